// Package user owns accounts: sign-up and sign-in, argon2id password
// hashing, revocable bearer tokens, roles (rider, driver, operator) and
// profiles.
package user
