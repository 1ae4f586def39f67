package postgres_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestPrivateKeepsDataAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	// Not t.TempDir: its parent is closed to others, and when the tests run
	// as root Postgres runs as another user who must reach the folder.
	dir, err := os.MkdirTemp("", "lastmile-private-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")

	p, err := postgres.StartPrivate(ctx, postgres.PrivateOptions{Dir: dataDir, Database: "lastmile", Fast: true})
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := p.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("postmaster.pid still exists after Stop: Postgres did not shut down cleanly (%v)", err)
	}

	p, err = postgres.StartPrivate(ctx, postgres.PrivateOptions{Dir: dataDir, Database: "lastmile", Fast: true})
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	defer p.Stop()
	conn, err = pgx.Connect(ctx, p.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("after restart: %q, %v; want the row written before", v, err)
	}

	// A second server on the same folder must refuse, not corrupt it.
	if _, err := postgres.StartPrivate(ctx, postgres.PrivateOptions{Dir: dataDir, Database: "lastmile", Fast: true}); err == nil {
		t.Fatalf("a second private Postgres started on a folder already in use")
	}
}

func TestConcurrentMigrationsAgree(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	// Start from an empty database: undo the template's schema.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"); err != nil {
		t.Fatal(err)
	}

	want, err := postgres.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	const replicas = 4
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	versions := make([]uint, replicas)
	for i := range replicas {
		wg.Go(func() { versions[i], errs[i] = postgres.Migrate(url) })
	}
	wg.Wait()
	for i := range replicas {
		if errs[i] != nil || versions[i] != want {
			t.Errorf("replica %d: version %d, err %v; want %d, nil", i, versions[i], errs[i], want)
		}
	}
	var dirty bool
	var v int64
	if err := conn.QueryRow(ctx, "SELECT version, dirty FROM schema_migrations").Scan(&v, &dirty); err != nil || dirty || uint(v) != want {
		t.Fatalf("schema_migrations = %d dirty=%t (%v), want %d clean", v, dirty, err, want)
	}
	// Applying again changes nothing and succeeds.
	if v, err := postgres.Migrate(url); err != nil || v != want {
		t.Fatalf("second Migrate = %d, %v", v, err)
	}
}

func TestFindBinaries(t *testing.T) {
	dir, err := postgres.FindBinaries()
	if err != nil {
		t.Fatalf("FindBinaries: %v", err)
	}
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not in %s: %v", name, dir, err)
		}
	}
}
