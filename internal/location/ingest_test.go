package location

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/identity"
)

// fakeRoutes is the route domain: fixed active routes per driver.
type fakeRoutes struct {
	mu     sync.Mutex
	routes map[uuid.UUID]Route
}

func (f *fakeRoutes) Routes(_ context.Context, ids []uuid.UUID) (map[uuid.UUID]Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uuid.UUID]Route{}
	for _, id := range ids {
		if r, ok := f.routes[id]; ok {
			r.Ahead = slices.Clone(r.Ahead)
			out[id] = r
		}
	}
	return out, nil
}

func (f *fakeRoutes) MarkPassed(context.Context, uuid.UUID, string, time.Time) error { return nil }

// fakeSink records the approaches offered to matching.
type fakeSink struct {
	mu     sync.Mutex
	offers []Approach
}

func (f *fakeSink) Offer(a Approach) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offers = append(f.offers, a)
}

func (f *fakeSink) stations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, a := range f.offers {
		ids = append(ids, a.StationID)
	}
	return ids
}

type fakePublisher struct{}

func (fakePublisher) Publish(context.Context, []uuid.UUID, string, any) error { return nil }

// tracker is a Service with one driver on one route and a clock the test
// moves by hand.
type tracker struct {
	tb     testing.TB
	s      *Service
	sink   *fakeSink
	driver uuid.UUID
	route  Route
	now    time.Time
}

// newTracker's route runs through station A at base and B 3 km north of it,
// each with a 500 m trigger radius.
func newTracker(tb testing.TB, cfg Config, riders ...uuid.UUID) *tracker {
	tb.Helper()
	tr := &tracker{tb: tb, sink: &fakeSink{}, driver: uuid.New(), now: t0}
	tr.route = Route{ID: uuid.New(), DestinationAreaID: "area-1", SeatsFree: 3, Riders: riders, Ahead: []Station{
		{ID: "A", Point: base, RadiusM: 500},
		{ID: "B", Point: north(base, 3000), RadiusM: 500},
	}}
	routes := &fakeRoutes{routes: map[uuid.UUID]Route{tr.driver: tr.route}}
	// A nil pool is fine: nothing here runs a query.
	tr.s = New(nil, cfg, routes, tr.sink, fakePublisher{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	tr.s.now = func() time.Time { return tr.now }
	return tr
}

// send sets the clock to t0+d and ingests a fix taken then, m metres north
// of base.
func (tr *tracker) send(d time.Duration, m float64) error {
	tr.now = t0.Add(d)
	return tr.s.Ingest(tr.driver, Fix{Point: north(base, m), At: tr.now})
}

func (tr *tracker) mustSend(d time.Duration, m float64) {
	tr.tb.Helper()
	if err := tr.send(d, m); err != nil {
		tr.tb.Fatalf("fix at +%v, %v m: %v", d, m, err)
	}
}

// loadRoute does what Run does when a driver with no known route sends a fix.
func (tr *tracker) loadRoute() {
	tr.tb.Helper()
	tr.s.refreshRoutes(context.Background(), true)
	if st := tr.s.state(tr.driver); st.route == nil {
		tr.tb.Fatal("route not loaded")
	}
}

func (tr *tracker) wantOffers(want ...string) {
	tr.tb.Helper()
	if got := tr.sink.stations(); !slices.Equal(got, want) {
		tr.tb.Fatalf("approaches offered at %v, want %v", got, want)
	}
}

func TestIngestRejectedFixChangesNothing(t *testing.T) {
	tests := []struct {
		name string
		bad  Fix // sent at +1 s
		code string
	}{
		// Applied, this jump would make the next fix implausible, and
		// would put the driver in A's radius.
		{"implausible jump", Fix{Point: north(base, -300), At: t0.Add(time.Second)}, "implausible_speed"},
		// Applied, this would make the next fix out of order.
		{"fix from the future", Fix{Point: north(base, -2000), At: t0.Add(time.Hour)}, "future_fix"},
		{"invalid latitude", Fix{Point: geo.Point{Lat: 91, Lng: base.Lng}, At: t0.Add(time.Second)}, "invalid_lat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(t, Config{})
			tr.mustSend(0, -2000)
			tr.loadRoute()
			tr.now = t0.Add(time.Second)
			if got := rejectionCode(t, tr.s.Ingest(tr.driver, tt.bad)); got != tt.code {
				t.Fatalf("bad fix: code %q, want %q", got, tt.code)
			}
			tr.wantOffers()
			if last := tr.s.state(tr.driver).last; !last.At.Equal(t0) {
				t.Fatalf("latest fix is at +%v, want the first one", last.At.Sub(t0))
			}
			// 40 m in 2 s from the first fix is fine.
			tr.mustSend(2*time.Second, -1960)
			tr.wantOffers()
		})
	}
}

func TestHandleMessageFromRiderIsForbidden(t *testing.T) {
	for _, role := range []identity.Role{identity.RoleRider, identity.RoleOperator} {
		t.Run(string(role), func(t *testing.T) {
			tr := newTracker(t, Config{})
			raw := json.RawMessage(`{"type":"location","lat":12.9716,"lng":77.5946}`)
			err := tr.s.HandleMessage(context.Background(), identity.Principal{UserID: tr.driver, Role: role}, raw)
			if !errors.Is(err, fault.Of(fault.Forbidden)) {
				t.Fatalf("HandleMessage = %v, want a Forbidden error", err)
			}
			if n := tr.s.count(); n != 0 {
				t.Fatalf("%d drivers tracked after a %s's message, want 0", n, role)
			}
		})
	}
}

func TestHandleMessageInput(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string // rejection code, "" when accepted
	}{
		{"valid", `{"type":"location","lat":12.9716,"lng":77.5946,"at":"2025-03-01T09:00:00Z","speed_mps":8,"heading":90}`, ""},
		{"valid without at", `{"type":"location","lat":12.9716,"lng":77.5946}`, ""},
		{"not JSON", `lat=12.9`, "malformed_location"},
		{"truncated", `{"type":"location","lat":12.9`, "malformed_location"},
		{"unknown field", `{"type":"location","lat":12.9716,"lng":77.5946,"alt":920}`, "malformed_location"},
		{"lat as a string", `{"type":"location","lat":"12.9716","lng":77.5946}`, "malformed_location"},
		{"missing lat", `{"type":"location","lng":77.5946}`, "invalid_lat"},
		{"null lat", `{"type":"location","lat":null,"lng":77.5946}`, "invalid_lat"},
		{"missing lng", `{"type":"location","lat":12.9716}`, "invalid_lng"},
		{"lat out of range", `{"type":"location","lat":91,"lng":77.5946}`, "invalid_lat"},
		{"bad at", `{"type":"location","lat":12.9716,"lng":77.5946,"at":"yesterday"}`, "invalid_at"},
		{"negative speed", `{"type":"location","lat":12.9716,"lng":77.5946,"speed_mps":-3}`, "invalid_speed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(t, Config{})
			p := identity.Principal{UserID: tr.driver, Role: identity.RoleDriver}
			err := tr.s.HandleMessage(context.Background(), p, json.RawMessage(tt.raw))
			if got := rejectionCode(t, err); got != tt.want {
				t.Fatalf("HandleMessage(%s) = %q (%v), want %q", tt.raw, got, err, tt.want)
			}
			accepted := tr.s.count() == 1 && tr.s.state(tr.driver).last != nil
			if accepted != (tt.want == "") {
				t.Fatalf("fix applied = %v, want %v", accepted, tt.want == "")
			}
		})
	}
}

func TestIngestApproachThrottled(t *testing.T) {
	tr := newTracker(t, Config{}) // ApproachEvery 5 s
	tr.mustSend(0, -2000)
	tr.loadRoute()
	tr.wantOffers()

	tr.mustSend(60*time.Second, -400) // enters A's radius
	tr.wantOffers("A")
	a := tr.sink.offers[0]
	if a.DriverID != tr.driver || a.RouteID != tr.route.ID || a.DestinationAreaID != "area-1" || !a.At.Equal(tr.now) {
		t.Errorf("approach = %+v, want driver, route, area and the fix's time", a)
	}
	if a.DistanceM < 399 || a.DistanceM > 401 {
		t.Errorf("approach distance = %.1f m, want 400", a.DistanceM)
	}
	if !a.ETA.After(a.At) || a.ETA.After(a.At.Add(400/3*time.Second)) {
		t.Errorf("ETA = +%v after the fix, want within the floor speed's", a.ETA.Sub(a.At))
	}

	tr.mustSend(62*time.Second, -350)
	tr.mustSend(64*time.Second, -300)
	tr.wantOffers("A") // still inside, within ApproachEvery

	tr.mustSend(66*time.Second, -250)
	tr.wantOffers("A", "A") // ApproachEvery after the first offer
	tr.mustSend(67*time.Second, -240)
	tr.wantOffers("A", "A")
}

// An approach carries the route's free seats as last read; a refresh that
// finds seats came back offers the approach again at once (matching may
// have set it aside for want of seats), and one that finds none came back
// does not.
func TestIngestSeatsBackOfferedAgainAtOnce(t *testing.T) {
	tr := newTracker(t, Config{}) // ApproachEvery 5 s
	tr.mustSend(0, -2000)
	tr.loadRoute()
	tr.mustSend(60*time.Second, -400) // enters A's radius
	tr.wantOffers("A")
	if got := tr.sink.offers[0].SeatsFree; got != 3 {
		t.Fatalf("approach seats = %d, want the route's 3", got)
	}
	routes := tr.s.routes.(*fakeRoutes)
	setSeats := func(n int) {
		routes.mu.Lock()
		r := routes.routes[tr.driver]
		r.SeatsFree = n
		routes.routes[tr.driver] = r
		routes.mu.Unlock()
	}
	tr.now = t0.Add(61 * time.Second)
	setSeats(1) // a match took two
	tr.s.refreshRoutes(context.Background(), false)
	tr.wantOffers("A")
	setSeats(3) // they cancelled
	tr.s.refreshRoutes(context.Background(), false)
	tr.wantOffers("A", "A")
	if got := tr.sink.offers[1].SeatsFree; got != 3 {
		t.Errorf("offered again with %d seats, want 3", got)
	}
}

func TestIngestNoApproachWhenOffline(t *testing.T) {
	tr := newTracker(t, Config{}) // OfflineAfter 60 s
	tr.mustSend(0, -2000)
	tr.loadRoute()

	tr.now = t0.Add(120 * time.Second)
	// Taken 61 s ago, inside A's radius: 1600 m in 59 s is plausible, but
	// the fix is too old to say where the driver is.
	err := tr.s.Ingest(tr.driver, Fix{Point: north(base, -400), At: t0.Add(59 * time.Second)})
	if code := rejectionCode(t, err); code != "old_fix" {
		t.Fatalf("a fix taken 61 s ago = %q (%v), want old_fix", code, err)
	}
	tr.wantOffers()
	if got := tr.s.state(tr.driver).approaching; got != "" {
		t.Fatalf("approaching %q from an offline fix", got)
	}

	// Taken exactly OfflineAfter ago: not older, so it counts.
	if err := tr.s.Ingest(tr.driver, Fix{Point: north(base, -390), At: t0.Add(60 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	tr.wantOffers("A")
}

func TestIngestPublishesToRiders(t *testing.T) {
	rider := uuid.New()
	drain := func(s *Service) []publication {
		var out []publication
		for {
			select {
			case p := <-s.pubq:
				out = append(out, p)
			default:
				return out
			}
		}
	}
	t.Run("route without riders", func(t *testing.T) {
		tr := newTracker(t, Config{})
		tr.mustSend(0, -2000)
		tr.loadRoute()
		tr.mustSend(2*time.Second, -1990)
		if got := drain(tr.s); len(got) != 0 {
			t.Fatalf("%d publications for a route without riders", len(got))
		}
	})
	t.Run("at most once per PublishEvery", func(t *testing.T) {
		tr := newTracker(t, Config{}, rider) // PublishEvery 1 s
		tr.mustSend(0, -2000)
		tr.loadRoute()
		pubs := drain(tr.s)
		if len(pubs) != 1 {
			t.Fatalf("%d publications after the route loaded, want 1", len(pubs))
		}
		if !slices.Equal(pubs[0].riders, []uuid.UUID{rider}) || pubs[0].data["driver_id"] != tr.driver {
			t.Fatalf("publication = %+v, want the driver's position for its rider", pubs[0])
		}

		tr.mustSend(500*time.Millisecond, -1995)
		tr.mustSend(999*time.Millisecond, -1990)
		if got := drain(tr.s); len(got) != 0 {
			t.Fatalf("%d publications within PublishEvery, want 0", len(got))
		}
		tr.mustSend(time.Second, -1985)
		pubs = drain(tr.s)
		if len(pubs) != 1 {
			t.Fatalf("%d publications after PublishEvery, want 1", len(pubs))
		}
		if pubs[0].data["lat"] != north(base, -1985).Lat {
			t.Errorf("published lat %v, want the latest fix's", pubs[0].data["lat"])
		}
	})
}

func TestIngestPassedStation(t *testing.T) {
	tr := newTracker(t, Config{}) // pass within 100 m, passed beyond 200 m
	tr.mustSend(0, -2000)
	tr.loadRoute()

	tr.mustSend(60*time.Second, -50) // reaches A
	tr.wantOffers("A")
	tr.mustSend(70*time.Second, 300) // leaves A, still in its 500 m radius
	select {
	case p := <-tr.s.passq:
		if p.routeID != tr.route.ID || p.stationID != "A" || !p.at.Equal(tr.now) {
			t.Fatalf("passed = %+v, want A on the route at the fix's time", p)
		}
	default:
		t.Fatal("no station passed")
	}
	if len(tr.s.passq) != 0 {
		t.Fatalf("%d more stations passed", len(tr.s.passq))
	}
	tr.wantOffers("A")

	tr.mustSend(80*time.Second, 250)
	tr.wantOffers("A")

	// The route source has not stored the pass yet; a refresh keeps it.
	tr.s.refreshRoutes(context.Background(), false)
	tr.mustSend(90*time.Second, 240)
	tr.wantOffers("A")

	tr.mustSend(160*time.Second, 2700) // enters B's radius
	tr.wantOffers("A", "B")
}

func TestIngestRateLimit(t *testing.T) {
	tr := newTracker(t, Config{FixRate: 5, FixBurst: 20})
	tr.now = t0
	send := func(i int) error {
		return tr.s.Ingest(tr.driver, Fix{Point: base, At: t0.Add(-time.Second + time.Duration(i)*time.Millisecond)})
	}
	for i := range 20 {
		if err := send(i); err != nil {
			t.Fatalf("fix %d of the burst: %v", i+1, err)
		}
	}
	if got := rejectionCode(t, send(20)); got != "rate_limited" {
		t.Fatalf("fix beyond the burst: code %q, want rate_limited", got)
	}
	tr.now = t0.Add(time.Second) // 5 more allowed
	for i := 21; i < 26; i++ {
		if err := send(i); err != nil {
			t.Fatalf("fix %d after a second: %v", i, err)
		}
	}
	if got := rejectionCode(t, send(26)); got != "rate_limited" {
		t.Fatalf("sixth fix in the next second: code %q, want rate_limited", got)
	}
}
