DROP TABLE ride_requests;
