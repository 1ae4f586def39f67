// Package postgres opens the connection pool, applies the embedded
// migrations, and runs a private Postgres server for `go run` and tests.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"

	"github.com/lastmile/lastmile/db"
)

// Open connects a pool to url and checks that the server answers.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "lastmile"
	// No statement, and no transaction left open by a stuck caller, holds
	// a connection and its locks for ever.
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "60s"
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "60s"
	// uuid.UUID travels in binary. Without this pgx encodes it through its
	// driver.Valuer (a 36-byte string per value, parsed again) and decodes
	// it through text: a tenth of the CPU of writing a batch of positions.
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		pgxuuid.Register(conn.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("reach postgres: %w", err)
	}
	return pool, nil
}

// migrationsTable is where golang-migrate keeps the applied version.
const migrationsTable = "schema_migrations"

func newMigrate(url string) (*migrate.Migrate, *sql.DB, error) {
	connCfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("parse database url: %w", err)
	}
	sqlDB := stdlib.OpenDB(*connCfg)
	drv, err := pgxmigrate.WithInstance(sqlDB, &pgxmigrate.Config{MigrationsTable: migrationsTable})
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("open migration driver: %w", err)
	}
	src, err := iofs.New(db.Migrations, "migrations")
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("prepare migrations: %w", err)
	}
	return m, sqlDB, nil
}

// Migrate applies every embedded migration not yet applied and returns the
// version the database is at. It is safe to call from several replicas at
// once: golang-migrate holds a Postgres advisory lock while it works, and a
// replica that waited finds nothing left to do.
func Migrate(url string) (uint, error) {
	m, sqlDB, err := newMigrate(url)
	if err != nil {
		return 0, err
	}
	defer sqlDB.Close()
	defer m.Close()
	m.LockTimeout = 2 * time.Minute
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return 0, fmt.Errorf("apply migrations: %w", err)
	}
	v, dirty, err := m.Version()
	if err != nil {
		return 0, fmt.Errorf("read migration version: %w", err)
	}
	if dirty {
		return v, fmt.Errorf("migration %d failed half-way; fix the database and run `lastmile migrate`", v)
	}
	return v, nil
}

// LatestVersion is the highest migration version embedded in the binary.
func LatestVersion() (uint, error) {
	entries, err := fs.ReadDir(db.Migrations, "migrations")
	if err != nil {
		return 0, fmt.Errorf("read embedded migrations: %w", err)
	}
	var latest uint
	for _, e := range entries {
		var v uint
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > latest {
			latest = v
		}
	}
	return latest, nil
}

// SchemaVersion reads the applied migration version through pool; dirty is
// true when a migration failed half-way.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (version uint, dirty bool, err error) {
	var v int64
	err = pool.QueryRow(ctx, "SELECT version, dirty FROM "+migrationsTable+" LIMIT 1").Scan(&v, &dirty)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read schema version: %w", err)
	}
	return uint(v), dirty, nil
}

// ProbeWrite checks that Postgres accepts a write through pool by updating
// the one row of write_probe, which a read-only server, a standby or a
// server that cannot write its log refuses.
func ProbeWrite(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, "UPDATE write_probe SET written_at = now() WHERE id = 1"); err != nil {
		return fmt.Errorf("probe a write: %w", err)
	}
	return nil
}
