-- location domain: let the once-a-second position writes be HOT updates.
-- An index on a column that changes (at) forced a new index entry and a
-- dead tuple per write; index only the approaching station (it changes
-- when an approach begins or ends) and leave room on each page.
DROP INDEX driver_positions_approaching_idx;
CREATE INDEX driver_positions_approaching_idx ON driver_positions (approaching_station_id) WHERE approaching_station_id IS NOT NULL;
ALTER TABLE driver_positions SET (fillfactor = 70);
