-- name: CreateTrip :one
INSERT INTO trips (driver_id, route_id, station_id, destination_area_id)
VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: LockScheduledTrip :one
SELECT * FROM trips WHERE route_id = $1 AND station_id = $2 AND status = 'scheduled' FOR UPDATE;

-- name: LockTrip :one
SELECT * FROM trips WHERE id = $1 FOR UPDATE;

-- name: GetTrip :one
SELECT * FROM trips WHERE id = $1;

-- name: LockOpenTripsOfRoute :many
SELECT * FROM trips WHERE route_id = $1 AND status IN ('scheduled', 'active') ORDER BY created_at FOR UPDATE;

-- name: UpdateTrip :exec
UPDATE trips SET status = $2, arrived_at = $3, started_at = $4, ended_at = $5, updated_at = now()
WHERE id = $1;

-- name: TripRiders :many
SELECT * FROM trip_riders WHERE trip_id = $1 ORDER BY joined_at, ride_request_id;

-- name: TripsRiders :many
SELECT * FROM trip_riders WHERE trip_id = ANY(sqlc.arg('trip_ids')::uuid[]) ORDER BY trip_id, joined_at, ride_request_id;

-- name: AddTripRider :exec
INSERT INTO trip_riders (trip_id, ride_request_id, rider_id, party_size, status)
VALUES ($1, $2, $3, $4, 'matched');

-- name: SetTripRiderStatus :exec
UPDATE trip_riders SET status = $3 WHERE trip_id = $1 AND ride_request_id = $2;

-- name: AddTripEvent :exec
INSERT INTO trip_events (trip_id, kind, actor_id, rider_id, at, data)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: TripEvents :many
SELECT * FROM trip_events WHERE trip_id = $1 ORDER BY id;

-- name: ListTrips :many
-- Trips the caller may see, newest first: its driver's, its riders', or all.
SELECT t.* FROM trips t
WHERE (sqlc.narg('driver_id')::uuid IS NULL OR t.driver_id = sqlc.narg('driver_id'))
  AND (sqlc.narg('rider_id')::uuid IS NULL OR EXISTS (
        SELECT 1 FROM trip_riders r WHERE r.trip_id = t.id AND r.rider_id = sqlc.narg('rider_id')))
  AND (sqlc.narg('status')::text IS NULL OR t.status = sqlc.narg('status'))
  AND (sqlc.narg('before_at')::timestamptz IS NULL OR (t.created_at, t.id) < (sqlc.narg('before_at'), sqlc.narg('before_id')::uuid))
ORDER BY t.created_at DESC, t.id DESC
LIMIT sqlc.arg('lim');

-- name: LiveRiders :many
-- The riders of each driver's scheduled or active trips who are still in them.
SELECT t.driver_id, r.rider_id FROM trips t JOIN trip_riders r ON r.trip_id = t.id
WHERE t.driver_id = ANY(sqlc.arg('driver_ids')::uuid[]) AND t.status IN ('scheduled', 'active')
  AND r.status IN ('matched', 'picked_up');

-- name: TripsEvents :many
SELECT * FROM trip_events WHERE trip_id = ANY(sqlc.arg('trip_ids')::uuid[]) ORDER BY trip_id, id;
