-- httpx: a claim on an Idempotency-Key is a lease. The replica running the
-- request renews it; when the replica or its connection dies the lease
-- runs out within seconds and a retry may claim the key again. claim names
-- the holder, so that only the current holder can store the answer.
ALTER TABLE idempotency_keys
    ADD COLUMN claim       uuid,
    ADD COLUMN lease_until timestamptz;
-- Claims left by replicas before this migration: expired now.
UPDATE idempotency_keys SET lease_until = now() WHERE completed_at IS NULL;
