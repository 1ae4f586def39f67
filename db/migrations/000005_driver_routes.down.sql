DROP TABLE route_stations;
DROP TABLE routes;
