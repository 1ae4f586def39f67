ALTER TABLE idempotency_keys DROP COLUMN claim, DROP COLUMN lease_until;
