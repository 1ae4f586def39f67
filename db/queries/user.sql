-- name: CreateUser :one
INSERT INTO users (email, password_hash, name, role)
VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: GetUserByEmail :one
SELECT * FROM users WHERE email = $1;

-- name: GetUser :one
SELECT * FROM users WHERE id = $1;

-- name: UpdateProfile :one
UPDATE users
SET name = coalesce(sqlc.narg('name'), name),
    phone = CASE WHEN sqlc.arg('set_phone')::bool THEN sqlc.narg('phone') ELSE phone END,
    updated_at = now()
WHERE id = sqlc.arg('id')
RETURNING *;

-- name: CreateToken :exec
INSERT INTO auth_tokens (hash, user_id, expires_at) VALUES ($1, $2, $3);

-- name: Authenticate :one
SELECT u.id, u.role
FROM auth_tokens t JOIN users u ON u.id = t.user_id
WHERE t.hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now();

-- name: ValidTokens :many
SELECT t.hash FROM auth_tokens t
WHERE t.hash = ANY(sqlc.arg('hashes')::bytea[]) AND t.revoked_at IS NULL AND t.expires_at > now();

-- name: RevokeToken :one
UPDATE auth_tokens SET revoked_at = now()
WHERE hash = $1 AND revoked_at IS NULL
RETURNING user_id;

-- name: DeleteExpiredTokens :execrows
DELETE FROM auth_tokens WHERE expires_at < now() - interval '1 day' OR revoked_at < now() - interval '1 day';

-- name: HitRateLimit :one
INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 1)
ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1
RETURNING hits;

-- name: TakeRateLimit :one
-- Counts one hit only while the key is under max in its window; over it,
-- no row is returned and nothing is written.
INSERT INTO rate_limits (key, window_start, hits) VALUES (@key, @window_start, 1)
ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1
WHERE rate_limits.hits < @max::int
RETURNING hits;

-- name: RateLimitHits :one
SELECT hits FROM rate_limits WHERE key = $1 AND window_start = $2;

-- name: DeleteOldRateLimits :execrows
DELETE FROM rate_limits WHERE window_start < $1;
