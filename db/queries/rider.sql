-- name: CreateRequest :one
INSERT INTO ride_requests (rider_id, station_id, destination_area_id, arrival_time, party_size)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: GetRequest :one
SELECT * FROM ride_requests WHERE id = $1;

-- name: LockRequest :one
SELECT * FROM ride_requests WHERE id = $1 FOR UPDATE;

-- name: ListRequests :many
SELECT * FROM ride_requests
WHERE (sqlc.narg('rider_id')::uuid IS NULL OR rider_id = sqlc.narg('rider_id'))
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
  AND (sqlc.narg('before_at')::timestamptz IS NULL OR (created_at, id) < (sqlc.narg('before_at'), sqlc.narg('before_id')::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg('lim');

-- name: LockStationQueue :exec
-- Waits for the turn to take waiting requests at station_id: one
-- transaction at a time per station, across replicas, until it ends.
SELECT pg_advisory_xact_lock(hashtextextended('lastmile.waiting.' || sqlc.arg('station_id')::text, 0));

-- name: LockWaiting :many
-- Waiting requests a driver approaching station_id towards area can take,
-- oldest arrival first. Rows another transaction holds (a rider
-- cancelling) are waited for, never skipped: skipping would hand younger
-- riders out before older ones.
SELECT * FROM ride_requests
WHERE station_id = sqlc.arg('station_id')
  AND destination_area_id = sqlc.arg('area_id')
  AND status = 'waiting'
  AND arrival_time <= sqlc.arg('latest_arrival')
ORDER BY arrival_time, created_at, id
LIMIT sqlc.arg('lim')
FOR UPDATE;

-- name: MarkMatched :execrows
UPDATE ride_requests SET status = 'matched', trip_id = sqlc.arg('trip_id'), matched_at = now(), updated_at = now()
WHERE id = ANY(sqlc.arg('ids')::uuid[]) AND status = 'waiting';

-- name: SetRequestStatus :one
UPDATE ride_requests SET status = sqlc.arg('status'), updated_at = now()
WHERE id = sqlc.arg('id')
RETURNING *;

-- name: Requeue :many
UPDATE ride_requests SET status = 'waiting', trip_id = NULL, updated_at = now()
WHERE id = ANY(sqlc.arg('ids')::uuid[]) AND status = 'matched'
RETURNING *;

-- name: ExpireWaiting :many
-- Waiting requests whose arrival lies too far in the past, a batch at a time;
-- rows another replica is expiring are skipped.
WITH due AS (
    SELECT d.id FROM ride_requests d
    WHERE d.status = 'waiting' AND d.arrival_time < sqlc.arg('before')
    ORDER BY d.arrival_time
    LIMIT sqlc.arg('lim')
    FOR UPDATE SKIP LOCKED
)
UPDATE ride_requests r SET status = 'expired', updated_at = now()
FROM due WHERE r.id = due.id
RETURNING r.*;

-- name: WaitingByStation :many
-- The operator's live map: waiting requests and riders per station.
SELECT station_id, count(*)::int AS requests, sum(party_size)::int AS riders
FROM ride_requests
WHERE status = 'waiting'
GROUP BY station_id
ORDER BY station_id;

-- name: MatchStats :one
-- Requests matched since a time, and the median seconds from request to match.
SELECT count(*)::int AS matched,
       COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM matched_at - created_at)), 0)::float8 AS median_wait_seconds
FROM ride_requests
WHERE matched_at >= sqlc.arg('since');

-- name: CountExpiredSince :one
SELECT count(*)::int FROM ride_requests
WHERE status = 'expired' AND updated_at >= sqlc.arg('since');

-- name: WaitingDemand :many
-- Where riders wait: each station, destination area and party size with
-- at least one waiting request, and the earliest arrival time there.
SELECT station_id, destination_area_id, party_size, min(arrival_time)::timestamptz AS earliest_arrival
FROM ride_requests
WHERE status = 'waiting'
GROUP BY station_id, destination_area_id, party_size;
