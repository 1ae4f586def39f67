ALTER TABLE driver_positions DROP COLUMN seats_free;
