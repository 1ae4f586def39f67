-- name: CreateRoute :one
INSERT INTO routes (driver_id, destination_area_id, seats_total, seats_free, vehicle)
VALUES ($1, $2, $3, $3, $4)
RETURNING *;

-- name: AddRouteStation :exec
INSERT INTO route_stations (route_id, position, station_id) VALUES ($1, $2, $3);

-- name: GetRoute :one
SELECT * FROM routes WHERE id = $1;

-- name: LockRoute :one
SELECT * FROM routes WHERE id = $1 FOR UPDATE;

-- name: CurrentRoute :one
SELECT * FROM routes WHERE driver_id = $1 AND status = 'active';

-- name: RouteStations :many
SELECT * FROM route_stations WHERE route_id = $1 ORDER BY position;

-- name: RoutesStations :many
SELECT * FROM route_stations WHERE route_id = ANY(sqlc.arg('route_ids')::uuid[]) ORDER BY route_id, position;

-- name: EndRoute :one
UPDATE routes SET status = $2, ended_at = now(), seats_free = seats_total
WHERE id = $1 AND status = 'active'
RETURNING *;

-- name: ReserveSeats :one
UPDATE routes SET seats_free = seats_free - sqlc.arg('seats')
WHERE id = sqlc.arg('id') AND status = 'active'
RETURNING seats_free;

-- name: ReleaseSeats :one
UPDATE routes SET seats_free = least(seats_total, seats_free + sqlc.arg('seats'))
WHERE id = sqlc.arg('id')
RETURNING seats_free;

-- name: MarkPassed :exec
UPDATE route_stations SET passed_at = coalesce(passed_at, sqlc.arg('at'))
WHERE route_id = sqlc.arg('route_id') AND station_id = sqlc.arg('station_id');

-- name: ActiveRoutes :many
SELECT * FROM routes WHERE status = 'active' ORDER BY created_at LIMIT $1;

-- name: ActiveRoutesOf :many
SELECT * FROM routes WHERE driver_id = ANY(sqlc.arg('driver_ids')::uuid[]) AND status = 'active';

-- name: LockRouteRow :exec
SELECT id FROM routes WHERE id = $1 FOR UPDATE;
