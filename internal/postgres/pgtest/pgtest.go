// Package pgtest gives each test its own fresh database, cloned in tens of
// milliseconds from a template that has every migration applied.
//
// It uses TEST_DATABASE_URL when set (a server where it may create
// databases); otherwise it starts a private Postgres for the test binary, the
// same way `lastmile serve` does. A package that uses it calls Main from its
// TestMain so that the private server is stopped when its tests end.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/db"
	"github.com/lastmile/lastmile/internal/postgres"
)

var (
	setupOnce sync.Once
	setupErr  error
	adminURL  string
	template  string
	private   *postgres.Private
	tmpDir    string
)

// Main runs the tests of a package and then stops the private Postgres, if
// one was started. Call it from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if private != nil {
		_ = private.Stop()
	}
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adminURL = os.Getenv("TEST_DATABASE_URL")
	if adminURL == "" {
		dir, err := os.MkdirTemp("", "lastmile-test-")
		if err != nil {
			return err
		}
		tmpDir = dir
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
		p, err := postgres.StartPrivate(ctx, postgres.PrivateOptions{Dir: dir, Database: "postgres", Fast: true})
		if err != nil {
			return fmt.Errorf("start private postgres for tests: %w", err)
		}
		private = p
		adminURL = p.AdminURL
	}
	sum, err := migrationsHash()
	if err != nil {
		return err
	}
	template = "lastmile_tmpl_" + sum[:16]
	return ensureTemplate(ctx)
}

func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(db.Migrations, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(db.Migrations, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// ensureTemplate creates the migrated template once per server, under an
// advisory lock so that test binaries running in parallel agree.
func ensureTemplate(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to test postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(727274)"); err != nil {
		return fmt.Errorf("lock template: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock(727274)")
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	ident := pgx.Identifier{template}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return err
	}
	if _, err := postgres.Migrate(withDatabase(adminURL, template)); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	_, err = conn.Exec(ctx, "ALTER DATABASE "+ident+" WITH is_template true ALLOW_CONNECTIONS false")
	return err
}

// withDatabase returns u with its database name replaced by name.
func withDatabase(u, name string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme == "" {
		// keyword/value form
		return u + " dbname=" + name
	}
	parsed.Path = "/" + name
	return parsed.String()
}

// URL creates a fresh, migrated database for tb, drops it when tb ends, and
// returns its connection URL.
func URL(tb testing.TB) string {
	tb.Helper()
	setupOnce.Do(func() { setupErr = setup() })
	if setupErr != nil {
		tb.Fatalf("test database: %v", setupErr)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		tb.Fatalf("connect to test postgres: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY file_copy",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize())); err != nil {
		tb.Fatalf("clone test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			tb.Errorf("connect to drop test database: %v", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	return withDatabase(adminURL, name)
}

// New creates a fresh, migrated database for tb and returns a pool on it,
// closed when tb ends.
func New(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	u := URL(tb)
	pool, err := postgres.Open(context.Background(), u, 10)
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}
