-- name: AppendEvent :one
-- Takes the user's next sequence number (the row lock serializes appends
-- for one user until the transaction ends), stores the event, queues it for
-- Web Push to each of the user's live subscriptions when push is set, and
-- sends a NOTIFY that Postgres delivers on commit.
WITH stream AS (
    INSERT INTO event_streams AS es (user_id, last_seq) VALUES (sqlc.arg(user_id), 1)
    ON CONFLICT (user_id) DO UPDATE SET last_seq = es.last_seq + 1
    RETURNING user_id, last_seq
), ev AS (
    INSERT INTO events (user_id, seq, kind, data, at, push)
    SELECT stream.user_id, stream.last_seq, sqlc.arg(kind), sqlc.arg(data), sqlc.arg(at), sqlc.arg(push) FROM stream
    RETURNING user_id, seq
), outbox AS (
    INSERT INTO push_outbox (subscription_id, user_id, seq, due_at)
    SELECT ps.id, ev.user_id, ev.seq, sqlc.arg(push_due_at)
    FROM ev JOIN push_subscriptions ps ON ps.user_id = ev.user_id
    WHERE sqlc.arg(push) AND (ps.expires_at IS NULL OR ps.expires_at > sqlc.arg(at))
)
SELECT ev.seq FROM ev, pg_notify('lastmile_events', ev.user_id::text || ':' || ev.seq::text) AS n;

-- name: ListEvents :many
SELECT seq, kind, data, at, push FROM events
WHERE user_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3;

-- name: StreamBounds :one
-- The last sequence number given out to the user and the first one still
-- kept (0 when none).
SELECT coalesce((SELECT es.last_seq FROM event_streams es WHERE es.user_id = sqlc.arg(user_id)::uuid), 0)::bigint AS last_seq,
       coalesce((SELECT min(e.seq) FROM events e WHERE e.user_id = sqlc.arg(user_id)::uuid), 0)::bigint AS first_seq;

-- name: LastSeqs :many
SELECT user_id, last_seq FROM event_streams WHERE user_id = ANY(sqlc.arg(user_ids)::uuid[]);

-- name: DeleteOldEvents :execrows
DELETE FROM events
WHERE (user_id, seq) IN (
    SELECT old.user_id, old.seq FROM events old
    WHERE old.at < sqlc.arg(before)::timestamptz
    LIMIT sqlc.arg(max)::int);

-- name: Notify :exec
SELECT pg_notify(sqlc.arg(channel)::text, sqlc.arg(payload)::text);

-- name: DeleteForeignPushSubscription :exec
-- An endpoint registered again by another user (another account signed in
-- on the same browser) stops receiving the first user's events.
DELETE FROM push_subscriptions WHERE endpoint = $1 AND user_id <> $2;

-- name: UpsertPushSubscription :one
INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, expires_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (endpoint) DO UPDATE
SET p256dh = excluded.p256dh, auth = excluded.auth, expires_at = excluded.expires_at
RETURNING id, endpoint, expires_at, created_at;

-- name: TrimPushSubscriptions :exec
-- Keeps a user's newest subscriptions only.
DELETE FROM push_subscriptions
WHERE user_id = sqlc.arg(user_id)::uuid AND id NOT IN (
    SELECT newest.id FROM push_subscriptions newest
    WHERE newest.user_id = sqlc.arg(user_id)::uuid
    ORDER BY newest.created_at DESC, newest.id DESC
    LIMIT sqlc.arg(keep)::int
);

-- name: DeletePushSubscription :execrows
DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2;

-- name: DeletePushSubscriptionByID :exec
DELETE FROM push_subscriptions WHERE id = $1;

-- name: DeleteExpiredPushSubscriptions :execrows
DELETE FROM push_subscriptions WHERE expires_at < $1;

-- name: ClaimPushes :many
-- Takes due pushes for this worker: they become due again at lease_until
-- (another replica retries them then if this one dies while sending).
UPDATE push_outbox o
SET due_at = sqlc.arg(lease_until)::timestamptz, attempts = o.attempts + 1
FROM push_subscriptions ps, events e
WHERE o.id IN (
        SELECT due.id FROM push_outbox due
        WHERE due.due_at <= sqlc.arg(now)::timestamptz
        ORDER BY due.due_at
        LIMIT sqlc.arg(max)::int
        FOR UPDATE SKIP LOCKED)
  AND ps.id = o.subscription_id
  AND e.user_id = o.user_id AND e.seq = o.seq
RETURNING o.id, o.attempts, ps.id AS subscription_id, ps.endpoint, ps.p256dh, ps.auth,
          e.seq, e.kind, e.data, e.at;

-- name: DeletePush :exec
DELETE FROM push_outbox WHERE id = $1;

-- name: RetryPush :exec
UPDATE push_outbox SET due_at = $2 WHERE id = $1;

-- name: DeleteDeliveredPushes :execrows
-- Events that reached a socket are not pushed.
DELETE FROM push_outbox o
USING (SELECT unnest(sqlc.arg(user_ids)::uuid[]) AS user_id, unnest(sqlc.arg(seqs)::bigint[]) AS seq) AS d
WHERE o.user_id = d.user_id AND o.seq = d.seq;

-- name: GetVAPIDKeys :one
SELECT public_key, private_key FROM push_vapid_keys;

-- name: InsertVAPIDKeys :exec
-- The first replica's keys win; the others read them back.
INSERT INTO push_vapid_keys (public_key, private_key) VALUES ($1, $2)
ON CONFLICT (id) DO NOTHING;

-- name: ListEventsForUsers :many
-- The next events of several users at once: for each user, up to max
-- events after its own sequence number, in order.
SELECT ev.user_id, ev.seq, ev.kind, ev.data, ev.at, ev.push
FROM (SELECT unnest(sqlc.arg(user_ids)::uuid[]) AS user_id, unnest(sqlc.arg(afters)::bigint[]) AS after) AS c
CROSS JOIN LATERAL (
    SELECT e.user_id, e.seq, e.kind, e.data, e.at, e.push FROM events e
    WHERE e.user_id = c.user_id AND e.seq > c.after
    ORDER BY e.seq
    LIMIT sqlc.arg(max)::int
) AS ev
ORDER BY ev.user_id, ev.seq;
