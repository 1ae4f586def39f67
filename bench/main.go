// Command bench runs LastMile side by side with what a user would build
// instead, in one sitting, with one load program (this process) driving
// real WebSockets at each server in turn:
//
//  1. bare: coder/websocket accept, encoding/json decode, the latest fix per
//     connection, one haversine — the ceiling;
//  2. redis: a WebSocket gateway writing every fix to Redis GEO (GEOADD and
//     GEODIST to the driver's next station, pipelined) and publishing a
//     "near station" message when a driver enters a station's radius;
//  3. lastmile: ./cmd/lastmile of the parent module, on a fresh private
//     Postgres, drivers signed up over the API with routes through the
//     seeded stations, riders waiting, matching on.
//
// Every server runs as its own process (this program re-executes itself
// for the first two). For each driver count and fix rate it reports fixes
// absorbed per second, server CPU per fix (plus Redis or Postgres, from
// /proc), resident memory per idle and busy socket, and the time from a
// crossing fix to the rider's notification. See docs/benchmarks.md.
//
// Usage:
//
//	cd bench && go run . -drivers 1000,5000,10000 -rates 1,2,4
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run is the program: the two helper servers as hidden subcommands, else
// the benchmark.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		switch args[1] {
		case "serve-bare":
			return serveBare(ctx, args[2:], stdout)
		case "serve-redis":
			return serveRedis(ctx, args[2:], stdout)
		}
	}
	o, err := parseFlags(args[1:], stderr)
	if err != nil {
		return err
	}
	return bench(ctx, o, stdout, stderr)
}

type options struct {
	drivers      []int
	rates        []float64
	systems      []string
	warmup       time.Duration
	window       time.Duration
	settle       time.Duration
	trials       int
	trialConc    int
	lead         time.Duration
	trialTimeout time.Duration
	riders       int
	scale        int
	scaleDrivers int
	scaleRate    float64
	redisAddr    string
	repo         string
	jsonPath     string
	dialConc     int
	signupConc   int
	keep         bool
	accounts     string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	drivers := fs.String("drivers", "1000,5000,10000", "driver socket counts, one server start each")
	rates := fs.String("rates", "1,2,4", "fixes per second per driver, one measurement window each")
	systems := fs.String("systems", "bare,redis,lastmile", "which systems to run, in this order")
	fs.DurationVar(&o.warmup, "warmup", 4*time.Second, "load before each measurement window")
	fs.DurationVar(&o.window, "window", 15*time.Second, "length of each measurement window")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "wait after opening the sockets before reading idle memory")
	fs.IntVar(&o.trials, "trials", 20, "crossing-to-notification trials per window (redis and lastmile)")
	fs.IntVar(&o.trialConc, "trial-concurrency", 4, "trials at once, each at a different station")
	fs.DurationVar(&o.lead, "lead", time.Second, "in a trial, time between the fix outside the radius and the crossing fix")
	fs.DurationVar(&o.trialTimeout, "trial-timeout", 10*time.Second, "how long a trial waits for its notification")
	fs.IntVar(&o.riders, "riders", 100, "riders waiting at the stations (LastMile)")
	fs.IntVar(&o.scale, "scale", 10, "the scaled run has this many times the stations and waiting riders (0 or 1: no scaled run)")
	fs.IntVar(&o.scaleDrivers, "scale-drivers", 5000, "driver sockets in the scaled run")
	fs.Float64Var(&o.scaleRate, "scale-rate", 2, "fixes per second per driver in the scaled run")
	fs.StringVar(&o.redisAddr, "redis", "127.0.0.1:6379", "Redis for the redis system")
	fs.StringVar(&o.repo, "repo", "..", "the LastMile module to build ./cmd/lastmile from")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.IntVar(&o.dialConc, "dial-concurrency", 200, "sockets dialled at once")
	fs.IntVar(&o.signupConc, "signup-concurrency", 4, "LastMile sign-ups at once (each costs an argon2id hash)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary folder (LastMile's data and logs)")
	fs.StringVar(&o.accounts, "accounts", "", "folder keeping LastMile's data right after the sign-ups; a later run with enough accounts there starts from a copy of it instead of signing up again (sign-ups cost ~30 ms of argon2id CPU each)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.drivers, err = ints(*drivers); err != nil {
		return o, fmt.Errorf("-drivers: %w", err)
	}
	if o.rates, err = floats(*rates); err != nil {
		return o, fmt.Errorf("-rates: %w", err)
	}
	for _, s := range strings.Split(*systems, ",") {
		switch s = strings.TrimSpace(s); s {
		case "bare", "redis", "lastmile":
			o.systems = append(o.systems, s)
		default:
			return o, fmt.Errorf("-systems: unknown %q (want bare, redis, lastmile)", s)
		}
	}
	for _, r := range o.rates {
		if r <= 0 || r > 5 {
			return o, fmt.Errorf("-rates: %g: want above 0 and at most 5 (LastMile's per-driver limit)", r)
		}
	}
	if o.window < 5*time.Second || o.trialConc < 1 || o.dialConc < 1 || o.signupConc < 1 {
		return o, errors.New("-window must be at least 5s; -trial-concurrency, -dial-concurrency and -signup-concurrency at least 1")
	}
	if o.scale > 1 && (o.scaleDrivers < 1 || o.scaleRate <= 0 || o.scaleRate > 5) {
		return o, errors.New("-scale-drivers must be positive and -scale-rate in (0, 5]")
	}
	return o, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q: want positive integers", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func floats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: want numbers", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// logf writes a progress line to stderr.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
