-- name: ClaimKey :one
-- Claims a new key, or takes over one whose holder's lease ran out without
-- an answer (the same request only). No row: the key is held or answered.
INSERT INTO idempotency_keys (user_id, key, fingerprint, claim, lease_until)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => sqlc.arg(lease_secs)::float8))
ON CONFLICT (user_id, key) DO UPDATE SET claim = EXCLUDED.claim, lease_until = EXCLUDED.lease_until
WHERE idempotency_keys.completed_at IS NULL
  AND idempotency_keys.lease_until < now()
  AND idempotency_keys.fingerprint = EXCLUDED.fingerprint
RETURNING created_at;

-- name: RenewKey :execrows
UPDATE idempotency_keys SET lease_until = now() + make_interval(secs => sqlc.arg(lease_secs)::float8)
WHERE user_id = $1 AND key = $2 AND claim = $3 AND completed_at IS NULL;

-- name: GetKey :one
SELECT user_id, key, fingerprint, status, content_type, body, completed_at,
       GREATEST(EXTRACT(EPOCH FROM lease_until - now()), 0)::float8 AS lease_left_secs
FROM idempotency_keys WHERE user_id = $1 AND key = $2;

-- name: CompleteKey :execrows
-- Stores the answer, only for the current holder and only once.
UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5, completed_at = now(), lease_until = NULL
WHERE user_id = $1 AND key = $2 AND claim = sqlc.arg(claim) AND completed_at IS NULL;

-- name: ReleaseKey :exec
DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND claim = $3 AND completed_at IS NULL;

-- name: DeleteOldKeys :execrows
DELETE FROM idempotency_keys WHERE created_at < $1;
