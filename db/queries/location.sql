-- name: UpsertPositions :exec
-- One statement for a whole batch (the arrays are zipped in step; -1, the
-- nil uuid, '' and the epoch stand for "none"); a row older than the
-- stored one loses.
INSERT INTO driver_positions AS p (driver_id, lat, lng, at, speed_mps, heading, route_id, approaching_station_id, eta, destination_area_id, seats_free, updated_at)
SELECT unnest(sqlc.arg('driver_ids')::uuid[]), unnest(sqlc.arg('lats')::float8[]), unnest(sqlc.arg('lngs')::float8[]),
       unnest(sqlc.arg('ats')::timestamptz[]), nullif(unnest(sqlc.arg('speeds')::float8[]), -1), nullif(unnest(sqlc.arg('headings')::float8[]), -1),
       nullif(unnest(sqlc.arg('route_ids')::uuid[]), '00000000-0000-0000-0000-000000000000'::uuid),
       nullif(unnest(sqlc.arg('approaching')::text[]), ''),
       nullif(unnest(sqlc.arg('etas')::timestamptz[]), 'epoch'::timestamptz),
       nullif(unnest(sqlc.arg('destinations')::text[]), ''), nullif(unnest(sqlc.arg('seats')::int[]), -1), now()
ON CONFLICT (driver_id) DO UPDATE
SET lat = excluded.lat, lng = excluded.lng, at = excluded.at, speed_mps = excluded.speed_mps, heading = excluded.heading,
    route_id = excluded.route_id, approaching_station_id = excluded.approaching_station_id, eta = excluded.eta,
    destination_area_id = excluded.destination_area_id, seats_free = excluded.seats_free, updated_at = now()
WHERE p.at <= excluded.at;

-- name: UpdatePositions :many
-- The rows this replica wrote before, in one statement (cheaper than the
-- upsert: no insert attempt per row); it returns the drivers whose row it
-- changed. A row gone, or newer from another replica, is not changed.
UPDATE driver_positions AS p
SET lat = u.lat, lng = u.lng, at = u.at, speed_mps = nullif(u.speed, -1), heading = nullif(u.heading, -1),
    route_id = nullif(u.route_id, '00000000-0000-0000-0000-000000000000'::uuid),
    approaching_station_id = nullif(u.approaching, ''), eta = nullif(u.eta, 'epoch'::timestamptz),
    destination_area_id = nullif(u.destination, ''), seats_free = nullif(u.seats, -1), updated_at = now()
FROM (SELECT unnest(sqlc.arg('driver_ids')::uuid[]) AS driver_id, unnest(sqlc.arg('lats')::float8[]) AS lat,
             unnest(sqlc.arg('lngs')::float8[]) AS lng, unnest(sqlc.arg('ats')::timestamptz[]) AS at,
             unnest(sqlc.arg('speeds')::float8[]) AS speed, unnest(sqlc.arg('headings')::float8[]) AS heading,
             unnest(sqlc.arg('route_ids')::uuid[]) AS route_id, unnest(sqlc.arg('approaching')::text[]) AS approaching,
             unnest(sqlc.arg('etas')::timestamptz[]) AS eta, unnest(sqlc.arg('destinations')::text[]) AS destination,
             unnest(sqlc.arg('seats')::int[]) AS seats) AS u
WHERE p.driver_id = u.driver_id AND p.at <= u.at
RETURNING p.driver_id;

-- name: ApproachingDrivers :many
-- Drivers whose latest fix, fresh enough, puts them inside the trigger
-- radius of station_id, on a route to area_id (or to an area not yet
-- written: a row from before migration 14, rewritten within a second).
SELECT driver_id, route_id, eta, at, destination_area_id, seats_free FROM driver_positions
WHERE approaching_station_id = sqlc.arg('station_id') AND at > sqlc.arg('fresh_after') AND route_id IS NOT NULL
  AND (destination_area_id = sqlc.arg('area_id') OR destination_area_id IS NULL);

-- name: LatestPositions :many
-- Online drivers' latest positions, a page at a time in driver id order.
SELECT * FROM driver_positions
WHERE at > sqlc.arg('fresh_after') AND driver_id > sqlc.arg('after')
ORDER BY driver_id LIMIT sqlc.arg('lim');

-- name: GetPosition :one
SELECT * FROM driver_positions WHERE driver_id = $1;
