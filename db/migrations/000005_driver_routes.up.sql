-- driver domain: routes (a driver's offer) and the stations each passes.
CREATE TABLE routes (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    driver_id           uuid        NOT NULL REFERENCES users (id),
    destination_area_id text        NOT NULL REFERENCES areas (id) ON DELETE RESTRICT,
    seats_total         smallint    NOT NULL CHECK (seats_total BETWEEN 1 AND 8),
    seats_free          smallint    NOT NULL,
    -- What riders look for at the station (plate, colour, model); optional.
    vehicle             text        CHECK (length(vehicle) <= 100),
    status              text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'cancelled')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    ended_at            timestamptz,
    -- A seat is never sold twice: the database itself refuses a negative count.
    CONSTRAINT routes_seats_free_range CHECK (seats_free >= 0 AND seats_free <= seats_total)
);
-- At most one active route per driver.
CREATE UNIQUE INDEX routes_one_active_per_driver ON routes (driver_id) WHERE status = 'active';
CREATE INDEX routes_driver_created_idx ON routes (driver_id, created_at DESC);

CREATE TABLE route_stations (
    route_id   uuid        NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
    position   smallint    NOT NULL CHECK (position BETWEEN 0 AND 19),
    station_id text        NOT NULL REFERENCES stations (id) ON DELETE RESTRICT,
    -- When the driver passed the station (arrived, or came close and moved away).
    passed_at  timestamptz,
    PRIMARY KEY (route_id, position),
    CONSTRAINT route_stations_once UNIQUE (route_id, station_id)
);
CREATE INDEX route_stations_station_idx ON route_stations (station_id);
