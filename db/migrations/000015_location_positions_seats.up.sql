-- Each driver's free seats, as the replica holding its socket last read the
-- route, so that a new ride request's lookup of approaching drivers sets
-- aside those with too few seats for any party waiting without reading
-- each route.
ALTER TABLE driver_positions ADD COLUMN seats_free integer;
