-- The schema starts here. Every later migration belongs to one domain and
-- names it in its file name (000002_user_accounts, ...).
COMMENT ON SCHEMA public IS 'LastMile: one schema, tables owned by domain packages';
