package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lastmile/lastmile/internal/postgres"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const overview = `lastmile: shared last-mile rides from metro stations.

usage:
  lastmile [serve] [flags]            run the server (the default command)
  lastmile migrate [flags]            apply migrations and exit
  lastmile version                    print the version
  lastmile user create --role operator --email E --name N
                                      create an account (password on stdin)
  lastmile stations import FILE       import stations from a GTFS .zip or stops.txt
  lastmile healthcheck [--addr A]     exit 0 when the local server's /readyz answers 200 (for container HEALTHCHECKs)
  lastmile simulate [--url URL] [--drivers N] [--riders M] [--duration D] [--speedup X] [--json] [--demo]
                                      simulated drivers and riders against an in-process server (or --url);
                                      non-zero exit when an invariant broke (lastmile simulate --help)

Every flag can also be set by the environment variable named beside it.
A command's own flags: lastmile COMMAND --help.

flags of serve:
`

// run is the whole program: main only gives it the process's arguments,
// environment and standard streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		cmd, rest = rest[0], rest[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, rest, getenv, stdout, stderr)
	case "user":
		err = runUser(ctx, rest, getenv, stdin, stdout, stderr)
	case "stations":
		err = runStations(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		err = runHealthcheck(ctx, rest, getenv, stdout, stderr)
	case "simulate":
		err = runSimulate(ctx, rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "lastmile", buildVersion())
	case "help":
		printOverview(stdout)
	default:
		printOverview(stderr)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func printOverview(w io.Writer) {
	fmt.Fprint(w, overview)
	var cfg config
	fs := newFlagSet("serve", "", w)
	cfg.registerServe(fs)
	fs.printDefaults(w)
	fmt.Fprint(w, "\nflags of migrate: --database, --data, --log-format, --log-level (as above)\n")
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}

// database returns the URL of the database to use: DATABASE_URL when set,
// else a private Postgres in the data folder, started here. stop stops what
// was started (and is a no-op otherwise).
func (c *config) database(ctx context.Context, logger *slog.Logger) (url string, stop func() error, err error) {
	if c.databaseURL != "" {
		return c.databaseURL, func() error { return nil }, nil
	}
	p, err := postgres.StartPrivate(ctx, postgres.PrivateOptions{Dir: c.dataDir, Database: "lastmile", Logger: logger})
	if err != nil {
		return "", nil, err
	}
	return p.URL, p.Stop, nil
}

// db is an open, migrated database: the pool, the schema version, and
// close, which closes the pool and stops the private Postgres if one was
// started.
type db struct {
	pool   *pgxpool.Pool
	schema uint
	close  func() error
}

// openDatabase is how every command reaches its database: DATABASE_URL or
// a private Postgres (see database), migrated to the latest schema, with a
// pool of at most maxConns connections.
func (c *config) openDatabase(ctx context.Context, logger *slog.Logger, maxConns int32) (*db, error) {
	url, stop, err := c.database(ctx, logger)
	if err != nil {
		return nil, err
	}
	schema, err := postgres.Migrate(url)
	if err != nil {
		return nil, errors.Join(err, stop())
	}
	pool, err := postgres.Open(ctx, url, maxConns)
	if err != nil {
		return nil, errors.Join(err, stop())
	}
	return &db{pool: pool, schema: schema, close: func() error { pool.Close(); return stop() }}, nil
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("migrate", "lastmile migrate [flags]", stderr)
	cfg.register(fs)
	if err := cfg.parse(fs, args, getenv); err != nil {
		return err
	}
	logger, err := cfg.newLogger(stderr)
	if err != nil {
		return err
	}
	d, err := cfg.openDatabase(ctx, logger, 1)
	if err != nil {
		return err
	}
	defer d.close()
	fmt.Fprintf(stdout, "database is at migration %d\n", d.schema)
	return nil
}

func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", "lastmile healthcheck [--addr A]", stderr)
	addr := fs.String("addr", ":8080", "listen address of the server to check")
	fs.env("addr", "LASTMILE_ADDR")
	if err := fs.parse(args, getenv); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", *addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %s", resp.Status)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
