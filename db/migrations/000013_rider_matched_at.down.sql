DROP INDEX IF EXISTS ride_requests_expired_idx;
DROP INDEX IF EXISTS ride_requests_matched_at_idx;
ALTER TABLE ride_requests DROP COLUMN IF EXISTS matched_at;
