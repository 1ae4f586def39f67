ALTER TABLE driver_positions SET LOGGED;
ALTER TABLE driver_positions DROP COLUMN destination_area_id;
