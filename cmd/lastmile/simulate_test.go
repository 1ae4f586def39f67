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

// runSimulation runs `lastmile simulate` in-process (its server on a test
// database) with a small population for a few seconds.
func runSimulation(t *testing.T) (simulateReport, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"lastmile", "simulate", "--database", pgtest.URL(t),
		"--drivers", "6", "--riders", "10", "--duration", "5s", "--speedup", "30", "--interval", "200ms", "--seed", "3", "--json"},
		func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
	var rep simulateReport
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("simulate printed no JSON report (%v; run: %v)\nstdout:\n%s\nstderr:\n%s", jerr, err, stdout.String(), stderr.String())
	}
	return rep, stdout.String(), err
}

func TestSimulateInProcess(t *testing.T) {
	rep, out, err := runSimulation(t)
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
// after printing the report that says which.
func TestSimulateBrokenInvariantFails(t *testing.T) {
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
	rep, out, err := runSimulation(t)
	if !errors.Is(err, simulate.ErrInvariants) {
		t.Fatalf("simulate = %v, want ErrInvariants\n%s", err, out)
	}
	if rep.Invariants.OK || !strings.Contains(out, "r-oversold") {
		t.Errorf("the report does not show the broken seat rule:\n%s", out)
	}
}
