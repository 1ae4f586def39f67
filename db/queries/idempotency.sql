-- name: ClaimKey :one
INSERT INTO idempotency_keys (user_id, key, fingerprint) VALUES ($1, $2, $3)
ON CONFLICT (user_id, key) DO NOTHING
RETURNING created_at;

-- name: GetKey :one
SELECT * FROM idempotency_keys WHERE user_id = $1 AND key = $2;

-- name: CompleteKey :exec
UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5, completed_at = now()
WHERE user_id = $1 AND key = $2;

-- name: ReleaseKey :exec
DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND completed_at IS NULL;

-- name: DeleteOldKeys :execrows
DELETE FROM idempotency_keys WHERE created_at < $1;
