package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
	"github.com/lastmile/lastmile/internal/simulate"
)

// simulateReport is the part of `simulate --json` the tests read.
type simulateReport struct {
	Fixes struct {
		Sent, Acknowledged int64
	}
	Requests       int64
	Matches        int64
	Unmatched      struct{ Riders int }
	MatchLatencyMs struct {
		P50, P95, P99, Max float64
	} `json:"match_latency_ms"`
	Errors     map[string]int64
	Invariants struct {
		OK     bool
		Source string
		Checks []struct {
			Name    string
			OK      bool
			Checked int
		}
	}
}

// runSimulation runs `lastmile simulate` with a small population for a few
// seconds, with where to run it (--database for an in-process server, or
// --url) and more flags in args.
func runSimulation(t *testing.T, args ...string) (simulateReport, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"lastmile", "simulate", "--drivers", "6", "--riders", "10", "--duration", "5s",
		"--interval", "200ms", "--seed", "3", "--json"}, args...)
	err := run(t.Context(), args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
	var rep simulateReport
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("simulate printed no JSON report (%v; run: %v)\nstdout:\n%s\nstderr:\n%s", jerr, err, stdout.String(), stderr.String())
	}
	return rep, stdout.String(), err
}

func TestSimulateInProcess(t *testing.T) {
	rep, out, err := runSimulation(t, "--database", pgtest.URL(t), "--speedup", "30")
	if err != nil {
		t.Fatalf("simulate = %v, want success (exit code 0)\n%s", err, out)
	}
	if rep.Requests == 0 || rep.Matches == 0 || rep.Fixes.Sent == 0 || rep.Fixes.Acknowledged == 0 {
		t.Errorf("requests %d, matches %d, fixes %d sent %d acknowledged: want all above 0\n%s",
			rep.Requests, rep.Matches, rep.Fixes.Sent, rep.Fixes.Acknowledged, out)
	}
	if rep.MatchLatencyMs.Max <= 0 || rep.MatchLatencyMs.P50 > rep.MatchLatencyMs.Max {
		t.Errorf("match latency %+v, want measured", rep.MatchLatencyMs)
	}
	if !rep.Invariants.OK || rep.Invariants.Source != "operator" || len(rep.Invariants.Checks) != 3 {
		t.Errorf("invariants %+v, want three checks passed over the operator's view", rep.Invariants)
	}
	for _, c := range rep.Invariants.Checks {
		if c.Checked == 0 {
			t.Errorf("invariant %s checked nothing", c.Name)
		}
	}
}

// A broken invariant makes simulate fail (the command exits non-zero),
// after printing the report that says which. This run drives a running
// server with --url, and without an operator token the checks read the
// simulated users' own view.
func TestSimulateBrokenInvariantFails(t *testing.T) {
	s := startServer(t, pgtest.URL(t), map[string]string{"LASTMILE_SIGNUP_LIMIT": "0"})
	simulateCheck = func(v simulate.View) simulate.Invariants {
		// Route r-oversold offers one seat; two live trips hold it.
		v.Routes["r-oversold"] = simulate.RouteState{SeatsTotal: 1, SeatsFree: 0}
		for _, id := range []string{"t-one", "t-two"} {
			v.Trips = append(v.Trips, simulate.TripState{ID: id, RouteID: "r-oversold", Status: "scheduled",
				Riders: []simulate.TripRider{{RiderID: "x-" + id, RequestID: "q-" + id, PartySize: 1, Status: "matched"}}})
		}
		return simulate.CheckInvariants(v)
	}
	t.Cleanup(func() { simulateCheck = nil })
	rep, out, err := runSimulation(t, "--url", s.URL, "--speedup", "1")
	if !errors.Is(err, simulate.ErrInvariants) {
		t.Fatalf("simulate = %v, want ErrInvariants\n%s", err, out)
	}
	if rep.Invariants.OK || rep.Invariants.Source != "participants" || !strings.Contains(out, "r-oversold") {
		t.Errorf("the report does not show the broken seat rule, read from the participants' view:\n%s", out)
	}
	if rep.Requests == 0 || rep.Fixes.Sent == 0 {
		t.Errorf("requests %d, fixes %d: the simulated users did nothing\n%s", rep.Requests, rep.Fixes.Sent, out)
	}
}
