-- rider domain: ride requests.
CREATE TABLE ride_requests (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    rider_id            uuid        NOT NULL REFERENCES users (id),
    station_id          text        NOT NULL REFERENCES stations (id) ON DELETE RESTRICT,
    destination_area_id text        NOT NULL REFERENCES areas (id) ON DELETE RESTRICT,
    arrival_time        timestamptz NOT NULL,
    party_size          smallint    NOT NULL DEFAULT 1 CHECK (party_size BETWEEN 1 AND 4),
    status              text        NOT NULL DEFAULT 'waiting'
        CHECK (status IN ('waiting', 'matched', 'picked_up', 'dropped_off', 'cancelled', 'expired', 'no_show')),
    -- The one trip this request is in (a request is in at most one trip at a time).
    trip_id             uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ride_requests_trip_when_matched CHECK (status NOT IN ('matched', 'picked_up', 'dropped_off') OR trip_id IS NOT NULL),
    CONSTRAINT ride_requests_no_trip_when_waiting CHECK (status <> 'waiting' OR trip_id IS NULL)
);
-- At most one open request per rider.
CREATE UNIQUE INDEX ride_requests_one_open_per_rider ON ride_requests (rider_id) WHERE status IN ('waiting', 'matched', 'picked_up');
-- Matching takes waiting requests of one station and destination, oldest arrival first.
CREATE INDEX ride_requests_waiting_idx ON ride_requests (station_id, destination_area_id, arrival_time) WHERE status = 'waiting';
CREATE INDEX ride_requests_waiting_arrival_idx ON ride_requests (arrival_time) WHERE status = 'waiting';
CREATE INDEX ride_requests_history_idx ON ride_requests (rider_id, created_at DESC, id DESC);
CREATE INDEX ride_requests_created_idx ON ride_requests (created_at DESC, id DESC);
