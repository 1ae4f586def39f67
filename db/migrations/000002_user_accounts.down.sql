DROP TABLE rate_limits;
DROP TABLE auth_tokens;
DROP TABLE users;
