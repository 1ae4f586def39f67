-- location domain: each driver's latest position, written in batches by the
-- replica that holds the driver's socket, so other replicas, the operator
-- map and the trip view can read it; and the station the driver is
-- approaching, so a ride request on any replica finds it at once.
CREATE TABLE driver_positions (
    driver_id              uuid             PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    lat                    double precision NOT NULL,
    lng                    double precision NOT NULL,
    at                     timestamptz      NOT NULL,
    speed_mps              double precision,
    heading                double precision,
    route_id               uuid,
    approaching_station_id text,
    eta                    timestamptz,
    updated_at             timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX driver_positions_approaching_idx ON driver_positions (approaching_station_id, at) WHERE approaching_station_id IS NOT NULL;
