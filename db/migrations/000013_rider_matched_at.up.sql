-- rider domain: when a request was matched, for the operator's counters
-- (matches in the last hour, median wait from request to match), and
-- indexes for those counters and for "expired today".
ALTER TABLE ride_requests ADD COLUMN matched_at timestamptz;
CREATE INDEX ride_requests_matched_at_idx ON ride_requests (matched_at) WHERE matched_at IS NOT NULL;
CREATE INDEX ride_requests_expired_idx ON ride_requests (updated_at) WHERE status = 'expired';
