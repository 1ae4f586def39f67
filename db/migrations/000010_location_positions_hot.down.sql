ALTER TABLE driver_positions RESET (fillfactor);
DROP INDEX driver_positions_approaching_idx;
CREATE INDEX driver_positions_approaching_idx ON driver_positions (approaching_station_id, at) WHERE approaching_station_id IS NOT NULL;
