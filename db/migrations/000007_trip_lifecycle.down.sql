ALTER TABLE ride_requests DROP CONSTRAINT ride_requests_trip_fk;
DROP TABLE trip_events;
DROP TABLE trip_riders;
DROP TABLE trips;
