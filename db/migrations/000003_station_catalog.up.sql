-- station domain: metro stations and the named areas (destinations) near them.
-- Ids are short slugs chosen by operators or derived from GTFS stop_ids;
-- other domains reference them with foreign keys ON DELETE RESTRICT.
CREATE TABLE stations (
    id         text             PRIMARY KEY CHECK (id ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(id) <= 64),
    name       text             NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    lines      text[]           NOT NULL DEFAULT '{}',
    lat        double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng        double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    radius_m   integer          NOT NULL DEFAULT 800 CHECK (radius_m BETWEEN 50 AND 5000),
    created_at timestamptz      NOT NULL DEFAULT now(),
    updated_at timestamptz      NOT NULL DEFAULT now()
);
-- A two-dimensional index for nearby search: GiST on (lng, lat) as a point
-- answers both "k nearest" (<->) and "inside this box" (<@) without a scan.
CREATE INDEX stations_position_idx ON stations USING gist (point(lng, lat));

-- Area ids are unique across all stations: riders name an area on its own
-- (destination_area_id). Deleting a station deletes its areas, unless
-- another domain still refers to one of them.
CREATE TABLE areas (
    id         text             PRIMARY KEY CHECK (id ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(id) <= 64),
    station_id text             NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    name       text             NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    lat        double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng        double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    created_at timestamptz      NOT NULL DEFAULT now(),
    updated_at timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX areas_station_id_idx ON areas (station_id);
