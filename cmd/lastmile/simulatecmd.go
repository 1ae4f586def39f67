package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/simulate"
	"github.com/lastmile/lastmile/internal/user"
)

const simulateSynopsis = `lastmile simulate [--url URL] [--drivers N] [--riders M] [--duration D] [--speedup X]
                         [--interval D] [--seed S] [--json] [--demo] [--keep]

Without --url it starts LastMile in-process on a private Postgres in a
temporary folder, drives it and stops it. With --url it drives a running
deployment over its public API only. The exit code is non-zero when an
invariant was broken.`

// simulateCheck, when set, replaces the invariant checks (tests feed it a
// broken view).
var simulateCheck func(simulate.View) simulate.Invariants

// simulateFlags are the command line of `lastmile simulate`.
type simulateFlags struct {
	url, operatorToken  string
	drivers, riders     int
	duration, interval  time.Duration
	speedup             float64
	seed                uint64
	jsonOut, demo, keep bool
	dataDir, database   string
	addr, logLevel      string
}

func runSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f simulateFlags
	fs := newFlagSet("simulate", simulateSynopsis, stderr)
	fs.StringVar(&f.url, "url", "", "base URL of a running deployment to drive over its public API (unset: an in-process server)")
	fs.StringVar(&f.operatorToken, "operator-token", "", "an operator's token, so the checks at the end read every trip of a remote deployment (unset: the simulated users' own view)")
	fs.env("operator-token", "LASTMILE_OPERATOR_TOKEN")
	fs.IntVar(&f.drivers, "drivers", 200, "simulated drivers (--demo: 5)")
	fs.IntVar(&f.riders, "riders", 400, "simulated riders (--demo: 10)")
	fs.DurationVar(&f.duration, "duration", time.Minute, "how long the run lasts (wall time; --demo runs until interrupted)")
	fs.Float64Var(&f.speedup, "speedup", 10, "how many times faster than real time the simulated world runs (--demo: 1)")
	fs.DurationVar(&f.interval, "interval", time.Second, "time between two GPS fixes of one driver")
	fs.Uint64Var(&f.seed, "seed", 1, "draws the scenario: the same seed, the same scenario")
	fs.BoolVar(&f.jsonOut, "json", false, "print the report as one JSON object")
	fs.BoolVar(&f.demo, "demo", false, "a handful of drivers and riders at real speed, round after round until interrupted")
	fs.BoolVar(&f.keep, "keep", false, "keep the in-process server's data folder")
	fs.StringVar(&f.dataDir, "data", "", "data folder of the in-process server's private Postgres (default: a new temporary folder); a folder simulate made is removed afterwards unless --keep")
	fs.StringVar(&f.database, "database", "", "Postgres URL for the in-process server instead of a private one (never taken from DATABASE_URL, so a simulation cannot fill a real database by accident)")
	fs.StringVar(&f.addr, "addr", "127.0.0.1:0", "listen address of the in-process server (--demo: 127.0.0.1:8080)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "log level of the in-process server (its logs go to stderr)")
	if err := fs.parse(args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("simulate takes no arguments, got %q", fs.Args())
	}
	if f.demo {
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		for name, v := range map[string]string{"drivers": "5", "riders": "10", "speedup": "1", "addr": "127.0.0.1:8080"} {
			if !set[name] {
				_ = fs.Set(name, v)
			}
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := simulate.Options{
		URL: f.url, OperatorToken: f.operatorToken, Drivers: f.drivers, Riders: f.riders, Duration: f.duration,
		Speedup: f.speedup, Interval: f.interval, Seed: f.seed, Demo: f.demo,
		Progress: stderr, ProgressTTY: isTerminal(stderr), Logger: logger, Check: simulateCheck,
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	var rep *simulate.Report
	var err error
	if f.url != "" {
		rep, err = simulate.Run(ctx, opts)
	} else {
		rep, err = simulateInProcess(ctx, f, opts, stderr)
	}
	if rep != nil {
		if f.jsonOut {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if encErr := enc.Encode(rep); encErr != nil && err == nil {
				err = encErr
			}
		} else {
			rep.Print(stdout)
		}
	}
	return err
}

// simulateInProcess runs the server in this process on a private Postgres
// (or --database), with the sign-up and sign-in limits off and its timings
// scaled by the speedup, and drives it.
func simulateInProcess(ctx context.Context, f simulateFlags, opts simulate.Options, stderr io.Writer) (rep *simulate.Report, err error) {
	var cfg config
	if err := cfg.registerDefaults(); err != nil {
		return nil, err
	}
	cfg.addr, cfg.logLevel, cfg.logFormat = f.addr, f.logLevel, "text"
	cfg.signupLimit, cfg.signinLimit = 0, 0
	// Simulated time runs speedup times faster: so do the server's clocks.
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / f.speedup) }
	cfg.maxSpeedKmh *= f.speedup
	cfg.noShowWait = scale(cfg.noShowWait)
	cfg.matchGrace = scale(cfg.matchGrace)
	cfg.requestExpiry = scale(cfg.requestExpiry)
	cfg.approachEvery = max(500*time.Millisecond, scale(cfg.approachEvery))
	opts.NoShowWait = cfg.noShowWait
	logger, err := cfg.newLogger(stderr)
	if err != nil {
		return nil, err
	}

	cfg.databaseURL = f.database
	if cfg.databaseURL == "" {
		dir := f.dataDir
		made := false
		if dir == "" {
			if dir, err = os.MkdirTemp("", "lastmile-simulate-"); err != nil {
				return nil, err
			}
			made = true
			// MkdirTemp makes it 0700; Postgres, started as an unprivileged
			// user when we are root, must be able to reach its folder inside.
			if err := os.Chmod(dir, 0o711); err != nil {
				return nil, err
			}
		} else if _, statErr := os.Stat(dir); errors.Is(statErr, os.ErrNotExist) {
			made = true
		}
		defer func() {
			switch {
			case f.keep:
				fmt.Fprintf(stderr, "simulate: the data is kept in %s\n", dir)
			case made:
				if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
					err = rmErr
				}
			}
		}()
		pg, err := postgres.StartPrivate(ctx, postgres.PrivateOptions{Dir: dir, Database: "lastmile", Logger: logger})
		if err != nil {
			return nil, err
		}
		defer func() {
			if stopErr := pg.Stop(); stopErr != nil && err == nil {
				err = stopErr
			}
		}()
		cfg.databaseURL = pg.URL
	}
	email, password, token, err := simulationOperator(ctx, cfg.databaseURL, logger)
	if err != nil {
		return nil, err
	}
	opts.OperatorToken = token

	listening := make(chan string, 1)
	cfg.onListen = func(addr string) { listening <- addr }
	// The server outlives an interrupt of the simulation: the checks at
	// the end still read it.
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServe()
	served := make(chan error, 1)
	go func() { served <- serve(serveCtx, cfg, logger, io.Discard) }()
	defer func() {
		stopServe()
		if serveErr := <-served; serveErr != nil && err == nil {
			err = serveErr
		}
	}()
	var addr string
	select {
	case addr = <-listening:
	case err := <-served:
		served <- err // for the deferred wait
		return nil, fmt.Errorf("the in-process server did not start: %w", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	opts.URL = "http://" + net.JoinHostPort(host, port)
	if err := waitReady(ctx, opts.URL); err != nil {
		return nil, err
	}
	if f.demo {
		fmt.Fprintf(stderr, "simulate: LastMile runs at %s; watch the operator map there, signed in as %s (password %q)\n", opts.URL, email, password)
	}
	return simulate.Run(ctx, opts)
}

// registerDefaults fills c with the server's default settings.
func (c *config) registerDefaults() error {
	fs := newFlagSet("serve", "", io.Discard)
	c.registerServe(fs)
	return fs.Parse(nil)
}

// simulationOperator creates an operator account for the invariant checks
// and signs it in.
func simulationOperator(ctx context.Context, databaseURL string, logger *slog.Logger) (email, password, token string, err error) {
	if _, err := postgres.Migrate(databaseURL); err != nil {
		return "", "", "", err
	}
	pool, err := postgres.Open(ctx, databaseURL, 2)
	if err != nil {
		return "", "", "", err
	}
	defer pool.Close()
	users, err := user.New(pool, user.Config{}, noSockets{}, logger)
	if err != nil {
		return "", "", "", err
	}
	var raw [9]byte
	_, _ = rand.Read(raw[:])
	suffix := hex.EncodeToString(raw[:])
	email, password = "sim-operator-"+suffix[:8]+"@simulate.example", "operator "+suffix
	if _, err := users.Create(ctx, user.SignUpInput{Email: email, Password: password, Name: "Simulation operator", Role: identity.RoleOperator}); err != nil {
		return "", "", "", fmt.Errorf("create the simulation's operator: %w", err)
	}
	sess, err := users.SignIn(ctx, email, password, "127.0.0.1")
	if err != nil {
		return "", "", "", fmt.Errorf("sign the simulation's operator in: %w", err)
	}
	return email, password, sess.Token, nil
}

// waitReady polls /readyz until it answers 200 (up to 30 s).
func waitReady(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the in-process server at %s never became ready", base)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
