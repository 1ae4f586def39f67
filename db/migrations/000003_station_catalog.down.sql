DROP TABLE areas;
DROP TABLE stations;
