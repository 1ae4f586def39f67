package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lmittmann/tint"

	"github.com/lastmile/lastmile/web"
)

// config is everything `lastmile serve` and the tools can be told, by flag
// or by the environment variable named beside each flag.
type config struct {
	addr            string
	metricsAddr     string
	databaseURL     string
	dataDir         string
	logFormat       string
	logLevel        string
	shutdownTimeout time.Duration
	drainDelay      time.Duration
	maxConns        int
	tokenTTL        time.Duration
	allowedOrigins  []string
	eventRetention  time.Duration
	requestExpiry   time.Duration
	noShowWait      time.Duration
	matchGrace      time.Duration
	matchWorkers    int
	offlineAfter    time.Duration
	maxSpeedKmh     float64
	approachEvery   time.Duration
	trustedProxies  []netip.Prefix
	mapTiles        string
	signupLimit     int
	signinLimit     int
	// onListen, when set, is told the address serve listens on (simulate
	// starts its in-process server on a free port).
	onListen func(addr string)
}

// envFlag pairs a flag with the environment variable that also sets it.
type envFlag struct {
	name, env string
}

// flagSet is a flag.FlagSet that knows each flag's environment variable.
type flagSet struct {
	*flag.FlagSet
	envs []envFlag
}

func newFlagSet(name, synopsis string, out io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: %s\n", synopsis)
		fs.printDefaults(out)
	}
	return fs
}

func (fs *flagSet) env(name, env string) { fs.envs = append(fs.envs, envFlag{name, env}) }

func (fs *flagSet) printDefaults(out io.Writer) {
	envOf := map[string]string{}
	for _, e := range fs.envs {
		envOf[e.name] = e.env
	}
	fs.VisitAll(func(f *flag.Flag) {
		line := fmt.Sprintf("  --%-18s %-26s %s", f.Name, envOf[f.Name], f.Usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(out, line)
	})
}

// parse applies the environment first and the command line second, so a
// flag beats its variable. A bad value names the variable or flag.
func (fs *flagSet) parse(args []string, getenv func(string) string) error {
	for _, e := range fs.envs {
		if v := getenv(e.env); v != "" {
			if err := fs.Set(e.name, v); err != nil {
				return fmt.Errorf("environment variable %s=%q (flag --%s): %w", e.env, v, e.name, err)
			}
		}
	}
	return fs.Parse(args)
}

func (fs *flagSet) envOf(name string) string {
	for _, e := range fs.envs {
		if e.name == name {
			return e.env
		}
	}
	return ""
}

// parse reads the command line and environment into c with fs, then
// validates the whole configuration, so that a bad value stops the program
// at start rather than being quietly replaced by a default.
func (c *config) parse(fs *flagSet, args []string, getenv func(string) string) error {
	if err := fs.parse(args, getenv); err != nil {
		return err
	}
	return c.validate(fs)
}

// validate checks every flag fs registered and returns one error naming
// each bad value's flag and environment variable, or nil.
func (c *config) validate(fs *flagSet) error {
	var errs []error
	check := func(name string, ok bool, want string) {
		f := fs.Lookup(name)
		if ok || f == nil { // a flag this command does not take
			return
		}
		value := f.Value.String()
		if name == "database" {
			value = "…" // a URL may hold a password
		}
		errs = append(errs, fmt.Errorf("--%s=%s (%s): %s", name, value, fs.envOf(name), want))
	}
	positive := func(name string, d time.Duration) {
		check(name, d > 0, "must be a duration above 0, such as 30s or 5m")
	}

	var level slog.Level
	check("log-level", level.UnmarshalText([]byte(c.logLevel)) == nil, "must be debug, info, warn or error")
	check("log-format", slices.Contains([]string{"", "text", "json"}, strings.ToLower(c.logFormat)), "must be text or json")
	check("data", c.databaseURL != "" || strings.TrimSpace(c.dataDir) != "", "must name a folder when --database is unset")
	if c.databaseURL != "" {
		_, err := pgconn.ParseConfig(c.databaseURL)
		check("database", err == nil, "must be a Postgres URL such as postgres://user:pass@host:5432/lastmile")
	}
	_, _, err := net.SplitHostPort(c.addr)
	check("addr", err == nil, "must be host:port or :port, such as :8080")
	positive("shutdown-timeout", c.shutdownTimeout)
	check("drain-delay", c.drainDelay >= 0, "must not be negative")
	check("db-max-conns", c.maxConns >= 1 && c.maxConns <= 1000, "must be a whole number from 1 to 1000")
	positive("token-ttl", c.tokenTTL)
	for _, o := range c.allowedOrigins {
		_, err := path.Match(o, "")
		check("allowed-origins", err == nil, fmt.Sprintf("%q is not an origin pattern such as https://app.example.com or *.example.com", o))
	}
	positive("event-retention", c.eventRetention)
	positive("request-expiry", c.requestExpiry)
	positive("no-show-wait", c.noShowWait)
	positive("match-grace", c.matchGrace)
	check("match-workers", c.matchWorkers >= 1 && c.matchWorkers <= 256, "must be a whole number from 1 to 256")
	positive("offline-after", c.offlineAfter)
	check("max-speed-kmh", c.maxSpeedKmh > 0 && c.maxSpeedKmh <= 1000, "must be above 0 and at most 1000")
	positive("approach-every", c.approachEvery)
	if _, err := web.TileOrigin(c.mapTiles); err != nil {
		check("map-tiles", false, "must be an http(s) tile URL template with {z}, {x} and {y}, such as "+web.DefaultTiles)
	}
	check("signup-limit", c.signupLimit >= 0, "must be 0 (off) or more")
	check("signin-limit", c.signinLimit >= 0, "must be 0 (off) or more")
	if c.metricsAddr != "" {
		_, _, err := net.SplitHostPort(c.metricsAddr)
		check("metrics-addr", err == nil, "must be host:port or :port, such as 127.0.0.1:9090")
	}
	return errors.Join(errs...)
}

// register adds the flags every command that touches the database shares.
func (c *config) register(fs *flagSet) {
	fs.StringVar(&c.databaseURL, "database", "", "Postgres URL; unset: a private Postgres in --data")
	fs.env("database", "DATABASE_URL")
	fs.StringVar(&c.dataDir, "data", "./.lastmile", "data folder for the private Postgres")
	fs.env("data", "LASTMILE_DATA")
	fs.StringVar(&c.logFormat, "log-format", "", "text | json (default: text on a terminal, json otherwise)")
	fs.env("log-format", "LASTMILE_LOG_FORMAT")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug | info | warn | error")
	fs.env("log-level", "LASTMILE_LOG_LEVEL")
}

// registerServe adds the flags only the server needs.
func (c *config) registerServe(fs *flagSet) {
	fs.StringVar(&c.addr, "addr", ":8080", "listen address")
	fs.env("addr", "LASTMILE_ADDR")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "listen address of /metrics for Prometheus, never the public one (unset: no metrics endpoint)")
	fs.env("metrics-addr", "LASTMILE_METRICS_ADDR")
	c.register(fs)
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may take to finish at shutdown")
	fs.env("shutdown-timeout", "LASTMILE_SHUTDOWN_TIMEOUT")
	fs.DurationVar(&c.drainDelay, "drain-delay", 0, "at shutdown, answer /readyz with 503 this long before closing the listener (give a load balancer time to notice)")
	fs.env("drain-delay", "LASTMILE_DRAIN_DELAY")
	fs.IntVar(&c.maxConns, "db-max-conns", 20, "largest number of Postgres connections this replica opens")
	fs.env("db-max-conns", "LASTMILE_DB_MAX_CONNS")
	fs.DurationVar(&c.tokenTTL, "token-ttl", 30*24*time.Hour, "how long a sign-in token works")
	fs.env("token-ttl", "LASTMILE_TOKEN_TTL")
	fs.Func("allowed-origins", "comma-separated browser origins allowed to open WebSockets, besides the server's own", func(v string) error {
		c.allowedOrigins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.allowedOrigins = append(c.allowedOrigins, o)
			}
		}
		return nil
	})
	fs.env("allowed-origins", "LASTMILE_ALLOWED_ORIGINS")
	fs.DurationVar(&c.eventRetention, "event-retention", 7*24*time.Hour, "how long events are kept for clients to resume from")
	fs.env("event-retention", "LASTMILE_EVENT_RETENTION")
	fs.DurationVar(&c.requestExpiry, "request-expiry", 30*time.Minute, "a waiting ride request expires this long after its arrival time")
	fs.env("request-expiry", "LASTMILE_REQUEST_EXPIRY")
	fs.DurationVar(&c.noShowWait, "no-show-wait", 5*time.Minute, "how long after arrival a driver may mark a rider no-show")
	fs.env("no-show-wait", "LASTMILE_NO_SHOW_WAIT")
	fs.DurationVar(&c.matchGrace, "match-grace", 5*time.Minute, "a request is eligible when its arrival time is no later than the driver's ETA plus this")
	fs.env("match-grace", "LASTMILE_MATCH_GRACE")
	fs.IntVar(&c.matchWorkers, "match-workers", 4, "matching worker pool size")
	fs.env("match-workers", "LASTMILE_MATCH_WORKERS")
	fs.DurationVar(&c.offlineAfter, "offline-after", time.Minute, "a driver whose latest fix is older counts as offline and is never matched")
	fs.env("offline-after", "LASTMILE_OFFLINE_AFTER")
	fs.Float64Var(&c.maxSpeedKmh, "max-speed-kmh", 150, "fixes implying a higher speed are rejected")
	fs.env("max-speed-kmh", "LASTMILE_MAX_SPEED_KMH")
	fs.DurationVar(&c.approachEvery, "approach-every", 5*time.Second, "while a driver stays near a station, how often its approach is matched again")
	fs.env("approach-every", "LASTMILE_APPROACH_EVERY")
	fs.Func("trusted-proxies", "comma-separated CIDRs of load balancers whose X-Forwarded-For is believed (for per-address limits)", func(v string) error {
		c.trustedProxies = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if !strings.Contains(s, "/") {
				s += map[bool]string{true: "/128", false: "/32"}[strings.Contains(s, ":")]
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", s)
			}
			c.trustedProxies = append(c.trustedProxies, p.Masked())
		}
		return nil
	})
	fs.env("trusted-proxies", "LASTMILE_TRUSTED_PROXIES")
	fs.StringVar(&c.mapTiles, "map-tiles", web.DefaultTiles, "tile URL template for the web app's map ({z}, {x}, {y}; {s} for subdomains)")
	fs.env("map-tiles", "LASTMILE_MAP_TILES")
	fs.IntVar(&c.signupLimit, "signup-limit", 10, "sign-ups per client address a minute (0: off)")
	fs.env("signup-limit", "LASTMILE_SIGNUP_LIMIT")
	fs.IntVar(&c.signinLimit, "signin-limit", 10, "checked sign-in attempts per client address a minute (0: off; 5 wrong passwords per address and email stay refused)")
	fs.env("signin-limit", "LASTMILE_SIGNIN_LIMIT")
}

// userLimits turns the limit flags (validated: 0 or more) into the user
// domain's settings, where 0 is its default and a negative limit is off.
func (c *config) userLimits() (signup, signinAddr int) {
	off := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	return off(c.signupLimit), off(c.signinLimit)
}

// newLogger builds the logger the config asks for: tint text on a terminal,
// JSON otherwise, unless --log-format says.
func (c *config) newLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	format := strings.ToLower(c.logFormat)
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
	default:
		return nil, errors.New("--log-format " + c.logFormat + ": want text or json")
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
