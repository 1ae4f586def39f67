package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// Every bad value is refused at start, naming its flag and its variable,
// whether it came from the command line or the environment; nothing is
// quietly replaced by a default.
func TestConfigRefusesBadValues(t *testing.T) {
	tests := []struct {
		flag, env, value string
	}{
		{"match-workers", "LASTMILE_MATCH_WORKERS", "-3"},
		{"match-workers", "LASTMILE_MATCH_WORKERS", "0"},
		{"offline-after", "LASTMILE_OFFLINE_AFTER", "-1s"},
		{"max-speed-kmh", "LASTMILE_MAX_SPEED_KMH", "0"},
		{"max-speed-kmh", "LASTMILE_MAX_SPEED_KMH", "-20"},
		{"db-max-conns", "LASTMILE_DB_MAX_CONNS", "0"},
		{"shutdown-timeout", "LASTMILE_SHUTDOWN_TIMEOUT", "0s"},
		{"drain-delay", "LASTMILE_DRAIN_DELAY", "-5s"},
		{"token-ttl", "LASTMILE_TOKEN_TTL", "0s"},
		{"event-retention", "LASTMILE_EVENT_RETENTION", "-1h"},
		{"request-expiry", "LASTMILE_REQUEST_EXPIRY", "0s"},
		{"no-show-wait", "LASTMILE_NO_SHOW_WAIT", "-1m"},
		{"match-grace", "LASTMILE_MATCH_GRACE", "0s"},
		{"approach-every", "LASTMILE_APPROACH_EVERY", "0s"},
		{"addr", "LASTMILE_ADDR", "8080"},
		{"allowed-origins", "LASTMILE_ALLOWED_ORIGINS", "https://[app"},
		{"log-level", "LASTMILE_LOG_LEVEL", "loud"},
		{"log-format", "LASTMILE_LOG_FORMAT", "xml"},
		{"database", "DATABASE_URL", "postgres://host:notaport/db"},
		{"map-tiles", "LASTMILE_MAP_TILES", "https://tiles.example.com/{z}.png"},
		{"signup-limit", "LASTMILE_SIGNUP_LIMIT", "-1"},
		{"signin-limit", "LASTMILE_SIGNIN_LIMIT", "-1"},
		{"metrics-addr", "LASTMILE_METRICS_ADDR", "9090"},
	}
	for _, tt := range tests {
		for _, via := range []string{"flag", "env"} {
			t.Run(tt.flag+"="+tt.value+" by "+via, func(t *testing.T) {
				args, env := []string{"lastmile", "serve"}, map[string]string{}
				if via == "flag" {
					args = append(args, "--"+tt.flag+"="+tt.value)
				} else {
					env[tt.env] = tt.value
				}
				err := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, io.Discard)
				if err == nil || !strings.Contains(err.Error(), "--"+tt.flag) || !strings.Contains(err.Error(), tt.env) {
					t.Fatalf("run with %s %s=%s = %v; want an error naming --%s and %s", via, tt.flag, tt.value, err, tt.flag, tt.env)
				}
			})
		}
	}
}

// All bad values are reported at once, and a URL's password is never echoed.
func TestConfigReportsEveryBadValue(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://u:secret@host:x/db"}
	err := run(context.Background(), []string{"lastmile", "--match-workers=-3", "--offline-after=-1s", "--max-speed-kmh=0"},
		func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run accepted four bad values")
	}
	for _, want := range []string{"--match-workers", "--offline-after", "--max-speed-kmh", "DATABASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the database password", err)
	}
}

// The defaults are a valid configuration, for serve and for the commands
// that take only the database flags.
func TestConfigDefaultsAreValid(t *testing.T) {
	cfg := testConfig()
	fs := newFlagSet("serve", "", io.Discard)
	cfg.registerServe(fs)
	if err := cfg.parse(fs, nil, func(string) string { return "" }); err != nil {
		t.Fatalf("serve defaults refused: %v", err)
	}
	var db config
	fs = newFlagSet("migrate", "", io.Discard)
	db.register(fs)
	if err := db.parse(fs, nil, func(string) string { return "" }); err != nil {
		t.Fatalf("migrate defaults refused: %v", err)
	}
}
