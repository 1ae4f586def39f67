-- notify domain: per-user event streams, Web Push subscriptions, the push
-- outbox and the server's VAPID key pair.

-- One row per user who ever had an event: the last sequence number given
-- out. Appending updates this row, so appends for one user are serialized
-- by its row lock and sequence numbers have no gaps (a rolled-back append
-- gives its number back). It is kept when old events are deleted, so the
-- numbering never restarts.
CREATE TABLE event_streams (
    user_id  uuid   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    last_seq bigint NOT NULL CHECK (last_seq >= 0)
);

-- Events addressed to one user, numbered 1, 2, 3, ... per user; kept for
-- the retention period (7 days by default), then deleted.
CREATE TABLE events (
    user_id uuid        NOT NULL REFERENCES event_streams (user_id) ON DELETE CASCADE,
    seq     bigint      NOT NULL CHECK (seq > 0),
    kind    text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    data    jsonb       NOT NULL,
    at      timestamptz NOT NULL,
    -- push: the event also goes out as Web Push unless a socket takes it.
    push    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX events_at_idx ON events (at);

-- Browsers' Web Push subscriptions (the PushSubscription JSON), one row per
-- endpoint; an endpoint belongs to the user who registered it last.
CREATE TABLE push_subscriptions (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint        text        NOT NULL CHECK (length(endpoint) BETWEEN 1 AND 2048),
    p256dh          text        NOT NULL,
    auth            text        NOT NULL,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint_key ON push_subscriptions (endpoint);
CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (user_id, created_at DESC);

-- Important events waiting to go out as Web Push, one row per event and
-- subscription, written in the transaction that appends the event. A row
-- is deleted when the event reaches one of the user's sockets, when it has
-- been pushed, or when it gives up; due_at is when a worker may take it
-- (first after a short delay, later for a retry or while a worker holds it).
CREATE TABLE push_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id bigint      NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    user_id         uuid        NOT NULL,
    seq             bigint      NOT NULL,
    due_at          timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    FOREIGN KEY (user_id, seq) REFERENCES events (user_id, seq) ON DELETE CASCADE
);
CREATE INDEX push_outbox_due_idx ON push_outbox (due_at);
CREATE INDEX push_outbox_event_idx ON push_outbox (user_id, seq);
CREATE INDEX push_outbox_subscription_idx ON push_outbox (subscription_id);

-- The server's VAPID key pair (RFC 8292), made by the first replica that
-- needs it; one row.
CREATE TABLE push_vapid_keys (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    public_key  text        NOT NULL,
    private_key text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
