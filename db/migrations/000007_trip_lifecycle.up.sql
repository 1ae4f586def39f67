-- trip domain: trips, their riders, and every move as a trip event.
CREATE TABLE trips (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    driver_id           uuid        NOT NULL REFERENCES users (id),
    route_id            uuid        NOT NULL REFERENCES routes (id),
    station_id          text        NOT NULL REFERENCES stations (id) ON DELETE RESTRICT,
    destination_area_id text        NOT NULL REFERENCES areas (id) ON DELETE RESTRICT,
    status              text        NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'active', 'completed', 'cancelled')),
    arrived_at          timestamptz,
    started_at          timestamptz,
    ended_at            timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- One open trip per driver (route) and station: later matches join it.
CREATE UNIQUE INDEX trips_one_scheduled_per_route_station ON trips (route_id, station_id) WHERE status = 'scheduled';
CREATE INDEX trips_driver_idx ON trips (driver_id, created_at DESC, id DESC);
CREATE INDEX trips_route_idx ON trips (route_id) WHERE status IN ('scheduled', 'active');
CREATE INDEX trips_created_idx ON trips (created_at DESC, id DESC);

CREATE TABLE trip_riders (
    trip_id         uuid        NOT NULL REFERENCES trips (id) ON DELETE CASCADE,
    ride_request_id uuid        NOT NULL REFERENCES ride_requests (id),
    rider_id        uuid        NOT NULL REFERENCES users (id),
    party_size      smallint    NOT NULL CHECK (party_size BETWEEN 1 AND 4),
    status          text        NOT NULL CHECK (status IN ('matched', 'picked_up', 'dropped_off', 'no_show', 'cancelled', 'released')),
    joined_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trip_id, ride_request_id)
);
-- A request is in at most one live trip, whatever the concurrency.
CREATE UNIQUE INDEX trip_riders_one_live_trip ON trip_riders (ride_request_id) WHERE status IN ('matched', 'picked_up');
CREATE INDEX trip_riders_rider_idx ON trip_riders (rider_id);

CREATE TABLE trip_events (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trip_id  uuid        NOT NULL REFERENCES trips (id) ON DELETE CASCADE,
    kind     text        NOT NULL,
    actor_id uuid,
    rider_id uuid,
    at       timestamptz NOT NULL,
    data     jsonb
);
CREATE INDEX trip_events_trip_idx ON trip_events (trip_id, id);

ALTER TABLE ride_requests ADD CONSTRAINT ride_requests_trip_fk FOREIGN KEY (trip_id) REFERENCES trips (id);
