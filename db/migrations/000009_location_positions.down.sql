DROP TABLE driver_positions;
