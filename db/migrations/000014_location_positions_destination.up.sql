-- The area each driver is heading to, so that a new ride request's lookup
-- of approaching drivers reads only those going its way (before, every
-- driver approaching the station was read, and each other destination
-- cost matching a plain read of the route to find out).
ALTER TABLE driver_positions ADD COLUMN destination_area_id text;

-- Latest positions are rewritten every second by the replica that holds
-- each driver's socket and mean nothing a minute later: they need no WAL.
-- After a crash or a fail-over the table starts empty and is full again
-- within one write interval (docs/decisions.md, "Latest positions").
ALTER TABLE driver_positions SET UNLOGGED;
