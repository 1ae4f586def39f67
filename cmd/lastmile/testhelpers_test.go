package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/notify/notifytest"
)

// operator creates an operator with the CLI and signs it in.
func operator(tb testing.TB, s *server, dbURL string) *client {
	tb.Helper()
	email := "ops-" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "") + "@example.com"
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"lastmile", "user", "create", "--role", "operator", "--email", email, "--name", "Ops", "--log-format", "json"},
		func(k string) string { return map[string]string{"DATABASE_URL": dbURL}[k] }, strings.NewReader("operator pass 1\n"), &out, &errOut)
	if err != nil {
		tb.Fatalf("create operator: %v %s", err, errOut.String())
	}
	c := &client{tb: tb, base: s.URL, role: "operator"}
	var sess struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if code := c.do("POST", "/api/v1/auth/login", map[string]any{"email": email, "password": "operator pass 1"}, &sess); code != 200 {
		tb.Fatalf("operator sign-in = %d", code)
	}
	c.token, c.id = sess.Token, sess.User.ID
	return c
}

func arrival(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }

// matchOne publishes a route for drv through the HSR station to area A,
// asks for a ride for rdr there, walks the driver in, and returns the trip
// id the rider was matched to.
func matchOne(tb testing.TB, s *server, drv, rdr *client) (tripID, requestID string) {
	tb.Helper()
	dws := drv.connect("")
	rws := rdr.connect("")
	if code := drv.do("POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2}, nil); code != 201 {
		tb.Fatalf("route = %d", code)
	}
	req := rdr.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})
	w := newWalker(dws, 1500)
	for w.next() {
	}
	e := rws.NextOf("event", "ride.matched", 5*time.Second)
	return notifytest.Decode[map[string]any](tb, e)["trip_id"].(string), req["id"].(string)
}

func problemFields(p map[string]any) []string {
	var out []string
	errs, _ := p["errors"].([]any)
	for _, e := range errs {
		out = append(out, e.(map[string]any)["field"].(string))
	}
	return out
}

func wantFields(tb testing.TB, p map[string]any, fields ...string) {
	tb.Helper()
	got := problemFields(p)
	for _, f := range fields {
		found := false
		for _, g := range got {
			found = found || g == f
		}
		if !found {
			tb.Errorf("errors %v do not name %q (problem %v)", got, f, p)
		}
	}
}
