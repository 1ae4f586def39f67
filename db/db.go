// Package db embeds the SQL migrations so that the binary carries its schema.
package db

import "embed"

// Migrations holds db/migrations/*.sql, read by golang-migrate's iofs source.
//
//go:embed migrations/*.sql
var Migrations embed.FS
