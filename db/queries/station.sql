-- name: ListStations :many
SELECT * FROM stations
WHERE id > sqlc.arg('after')
ORDER BY id
LIMIT sqlc.arg('lim');

-- name: GetStation :one
SELECT * FROM stations WHERE id = $1;

-- name: GetStations :many
SELECT * FROM stations WHERE id = ANY(sqlc.arg('ids')::text[]);

-- name: StationIDsIn :many
SELECT id FROM stations WHERE id = ANY(sqlc.arg('ids')::text[]);

-- name: AnyStation :one
SELECT EXISTS (SELECT 1 FROM stations);

-- name: Fences :many
SELECT id, lat, lng, radius_m FROM stations WHERE id = ANY(sqlc.arg('ids')::text[]);

-- name: NearestByDegrees :many
-- The k stations nearest to a point in plain degree space: cheap with the
-- GiST index, and only used to bound the exact great-circle search.
SELECT lat, lng FROM stations
ORDER BY point(lng, lat) <-> point(sqlc.arg('lng')::float8, sqlc.arg('lat')::float8)
LIMIT sqlc.arg('k');

-- name: StationsInBoxes :many
-- Stations inside either of two lng/lat boxes (the second equals the first
-- unless the search area crosses the antimeridian).
SELECT * FROM stations
WHERE point(lng, lat) <@ box(point(sqlc.arg('min_lng1')::float8, sqlc.arg('min_lat')::float8), point(sqlc.arg('max_lng1')::float8, sqlc.arg('max_lat')::float8))
   OR point(lng, lat) <@ box(point(sqlc.arg('min_lng2')::float8, sqlc.arg('min_lat')::float8), point(sqlc.arg('max_lng2')::float8, sqlc.arg('max_lat')::float8));

-- name: CreateStation :one
INSERT INTO stations (id, name, lines, lat, lng, radius_m)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: UpdateStation :one
UPDATE stations
SET name = coalesce(sqlc.narg('name'), name),
    lines = coalesce(sqlc.narg('lines')::text[], lines),
    lat = coalesce(sqlc.narg('lat'), lat),
    lng = coalesce(sqlc.narg('lng'), lng),
    radius_m = coalesce(sqlc.narg('radius_m'), radius_m),
    updated_at = now()
WHERE id = sqlc.arg('id')
RETURNING *;

-- name: DeleteStation :execrows
DELETE FROM stations WHERE id = $1;

-- name: UpsertStations :many
-- GTFS import: insert new stations, change name and position of known ones
-- (lines, radius and areas stay as operators set them), and return the ids
-- of the rows that were inserted or actually changed.
INSERT INTO stations AS s (id, name, lat, lng)
SELECT unnest(sqlc.arg('ids')::text[]), unnest(sqlc.arg('names')::text[]),
       unnest(sqlc.arg('lats')::float8[]), unnest(sqlc.arg('lngs')::float8[])
ON CONFLICT (id) DO UPDATE
SET name = excluded.name, lat = excluded.lat, lng = excluded.lng, updated_at = now()
WHERE (s.name, s.lat, s.lng) IS DISTINCT FROM (excluded.name, excluded.lat, excluded.lng)
RETURNING s.id;

-- name: LockCatalog :exec
-- Serializes bulk writes (seed, import) across replicas until the
-- transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('lastmile.station.catalog', 0));

-- name: AreasOf :many
SELECT * FROM areas
WHERE station_id = ANY(sqlc.arg('station_ids')::text[])
ORDER BY station_id, name, id;

-- name: LockStation :one
-- Serialises changes to one station's areas (the area limit).
SELECT id FROM stations WHERE id = $1 FOR UPDATE;

-- name: CountAreas :one
SELECT count(*)::int FROM areas WHERE station_id = $1;

-- name: CreateArea :one
INSERT INTO areas (id, station_id, name, lat, lng)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: UpdateArea :one
UPDATE areas
SET name = coalesce(sqlc.narg('name'), name),
    lat = coalesce(sqlc.narg('lat'), lat),
    lng = coalesce(sqlc.narg('lng'), lng),
    updated_at = now()
WHERE id = sqlc.arg('id') AND station_id = sqlc.arg('station_id')
RETURNING *;

-- name: DeleteArea :execrows
DELETE FROM areas WHERE id = $1 AND station_id = $2;
