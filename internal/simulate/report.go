package simulate

import (
	"fmt"
	"io"
	"strings"
)

// Report is what a run did and saw.
type Report struct {
	URL      string  `json:"url"`
	Seed     uint64  `json:"seed"`
	Drivers  int     `json:"drivers"`
	Riders   int     `json:"riders"`
	Duration string  `json:"duration"`
	Speedup  float64 `json:"speedup"`
	Interval string  `json:"interval"`
	Demo     bool    `json:"demo,omitempty"`
	// SetupSeconds is the time to sign the users up and open their
	// sockets, before the run's clock started.
	SetupSeconds   float64 `json:"setup_s"`
	ElapsedSeconds float64 `json:"elapsed_s"`

	Fixes     FixReport       `json:"fixes"`
	Routes    int64           `json:"routes"`
	Requests  int64           `json:"requests"`
	Matches   int64           `json:"matches"`
	Unmatched UnmatchedReport `json:"unmatched"`
	Trips     TripReport      `json:"trips"`
	// MatchLatency runs from the driver's fix crossing the station's
	// radius (or the ride request being sent, when that came later) to
	// the rider's ride.matched arriving.
	MatchLatency Quantiles `json:"match_latency_ms"`
	// EventDelivery runs from an event's creation (its at) to its arrival
	// on the user's socket; the two clocks are this machine's and the
	// server's.
	EventDelivery  Quantiles        `json:"event_delivery_ms"`
	EventsReceived int64            `json:"events_received"`
	Errors         map[string]int64 `json:"errors"`
	Invariants     Invariants       `json:"invariants"`
}

// FixReport counts the drivers' GPS fixes: sent on a socket, and
// acknowledged (handled by the server without an error, as a later pong
// confirms).
type FixReport struct {
	Sent         int64            `json:"sent"`
	Acknowledged int64            `json:"acknowledged"`
	PerSecond    float64          `json:"per_second"`
	Rejected     map[string]int64 `json:"rejected"`
}

// UnmatchedReport counts the riders never matched, and why.
type UnmatchedReport struct {
	Riders int            `json:"riders"`
	Why    map[string]int `json:"why"`
}

// TripReport counts the steps of the trips.
type TripReport struct {
	Arrivals        int64 `json:"arrivals"`
	PickUps         int64 `json:"pickups"`
	NoShows         int64 `json:"no_shows"`
	Cancellations   int64 `json:"cancellations"`
	Starts          int64 `json:"starts"`
	DropOffs        int64 `json:"drop_offs"`
	RoutesCompleted int64 `json:"routes_completed"`
	RoutesCancelled int64 `json:"routes_cancelled"`
}

// fill completes the report from the counters and the riders' records.
func (w *world) fill(rep *Report, v View) {
	s := w.stats
	rep.Fixes = FixReport{Sent: s.fixesSent.Load(), Acknowledged: s.fixesAcked.Load()}
	if rep.ElapsedSeconds > 0 {
		rep.Fixes.PerSecond = round(float64(rep.Fixes.Sent) / rep.ElapsedSeconds)
	}
	rep.Routes, rep.Requests, rep.Matches = s.routes.Load(), s.requests.Load(), s.matches.Load()
	rep.Trips = TripReport{
		Arrivals: s.arrivals.Load(), PickUps: s.pickups.Load(), NoShows: s.noShows.Load(), Cancellations: s.cancels.Load(),
		Starts: s.starts.Load(), DropOffs: s.dropOffs.Load(), RoutesCompleted: s.routesCompleted.Load(), RoutesCancelled: s.routesCancelled.Load(),
	}
	rep.EventsReceived = s.eventsTaken.Load()
	s.mu.Lock()
	rep.Fixes.Rejected = copyMap(s.rejected)
	rep.Errors = copyMap(s.errors)
	rep.MatchLatency = s.match.quantiles()
	rep.EventDelivery = s.delivery.quantiles()
	s.mu.Unlock()

	rep.Unmatched.Why = map[string]int{}
	for _, r := range w.riders {
		r.mu.Lock()
		matched := map[string]bool{}
		for _, rec := range r.matched {
			matched[rec.RequestID] = true
		}
		why := ""
		switch {
		case len(r.requests) == 0 && r.failed > 0:
			why = "request_refused"
		case len(r.requests) == 0:
			why = "never_asked" // the run ended first
		}
		anyMatched := false
		for id, rd := range r.requests {
			if matched[id] {
				anyMatched = true
				continue
			}
			switch {
			case rd.endReason != "":
				why = rd.endReason
			case rd.status == "expired":
				why = "expired"
			default:
				why = "still_waiting_at_end"
			}
		}
		r.mu.Unlock()
		if !anyMatched && why != "" {
			rep.Unmatched.Riders++
			rep.Unmatched.Why[why]++
		}
	}
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	mode := fmt.Sprintf("%s at %gx, a fix every %s", r.Duration, r.Speedup, r.Interval)
	if r.Demo {
		mode = "demo at real speed"
	}
	p("simulated %d drivers and %d riders against %s (%s, seed %d)", r.Drivers, r.Riders, r.URL, mode, r.Seed)
	p("  setup (sign-ups, sockets)  %.1f s; run %.1f s", r.SetupSeconds, r.ElapsedSeconds)
	p("  fixes            %d sent (%.0f/s), %d acknowledged; refused: %s", r.Fixes.Sent, r.Fixes.PerSecond, r.Fixes.Acknowledged, topKinds(r.Fixes.Rejected))
	p("  routes           %d published, %d completed, %d cancelled", r.Routes, r.Trips.RoutesCompleted, r.Trips.RoutesCancelled)
	p("  ride requests    %d, matches %d", r.Requests, r.Matches)
	why := make(map[string]int64, len(r.Unmatched.Why))
	for k, v := range r.Unmatched.Why {
		why[k] = int64(v)
	}
	p("  riders unmatched %d: %s", r.Unmatched.Riders, topKinds(why))
	p("  trips            %d arrivals, %d pickups, %d no-shows, %d cancellations, %d starts, %d drop-offs",
		r.Trips.Arrivals, r.Trips.PickUps, r.Trips.NoShows, r.Trips.Cancellations, r.Trips.Starts, r.Trips.DropOffs)
	p("  match latency    %s (crossing fix, or request if later, to ride.matched)", r.MatchLatency)
	p("  event delivery   %s (%d events received)", r.EventDelivery, r.EventsReceived)
	p("  errors           %s", topKinds(r.Errors))
	inv := "ok"
	if !r.Invariants.OK {
		inv = "BROKEN"
	}
	p("  invariants       %s (read as %s)", inv, r.Invariants.Source)
	if r.Invariants.Error != "" {
		p("    could not read the view: %s", r.Invariants.Error)
	}
	for _, c := range r.Invariants.Checks {
		status := "ok"
		if !c.OK {
			status = fmt.Sprintf("%d violations", c.Violations)
		}
		p("    %-20s %s (%d checked)", c.Name, status, c.Checked)
		for _, e := range c.Examples {
			p("      %s", e)
		}
	}
	if n := r.Fixes.Rejected["implausible_speed"]; n > 0 {
		p("note: the server refused %d fixes as too fast; at --speedup %g it needs --max-speed-kmh %g or more", n, r.Speedup, 150*r.Speedup)
	}
	if strings.Contains(topKinds(r.Errors), "http_429") {
		p("note: the server rate-limited the simulation; run it with --signup-limit 0 --signin-limit 0")
	}
}
