package location

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newDriver adds a driver account (driver_positions refers to users).
func newDriver(tb testing.TB, pool *pgxpool.Pool) uuid.UUID {
	tb.Helper()
	var id uuid.UUID
	err := pool.QueryRow(context.Background(), "INSERT INTO users (email, password_hash, name, role) VALUES ($1, 'x', 'D', 'driver') RETURNING id",
		fmt.Sprintf("driver-%s@example.com", uuid.NewString()[:12])).Scan(&id)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// Drivers approaching a station are read back by destination: a new
// request's lookup gets only the drivers going its way, each naming its
// destination, plus any whose row has no destination yet (written before
// the column existed), which name none.
func TestApproachingReadsBackOnlyDriversGoingThatWay(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	ahead := []Station{{ID: "A", Point: base, RadiusM: 500}}
	toKudlu, toAgara, unwritten := newDriver(t, pool), newDriver(t, pool), newDriver(t, pool)
	routes := &fakeRoutes{routes: map[uuid.UUID]Route{
		toKudlu:   {ID: uuid.New(), DestinationAreaID: "kudlu-gate", SeatsFree: 3, Ahead: ahead},
		toAgara:   {ID: uuid.New(), DestinationAreaID: "agara", SeatsFree: 3, Ahead: ahead},
		unwritten: {ID: uuid.New(), DestinationAreaID: "kudlu-gate", SeatsFree: 3, Ahead: ahead},
	}}
	s := New(pool, Config{}, routes, &fakeSink{}, fakePublisher{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	now := time.Now()
	for _, d := range []uuid.UUID{toKudlu, toAgara, unwritten} {
		if err := s.Ingest(d, Fix{Point: north(base, -300), At: now}); err != nil {
			t.Fatal(err)
		}
	}
	s.refreshRoutes(ctx, true) // the routes become known and each driver approaches A
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE driver_positions SET destination_area_id = NULL, seats_free = NULL WHERE driver_id = $1", unwritten); err != nil {
		t.Fatal(err)
	}

	got, err := NewPositions(pool, 0).Approaching(ctx, "A", "kudlu-gate")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b Approach) int { return slices.Compare(a.DriverID[:], b.DriverID[:]) })
	want := map[uuid.UUID]string{toKudlu: "kudlu-gate", unwritten: ""}
	if len(got) != len(want) {
		t.Fatalf("Approaching(A, kudlu-gate) = %+v, want the drivers %v", got, want)
	}
	for _, a := range got {
		dest, ok := want[a.DriverID]
		seats := 3
		if dest == "" {
			seats = 0 // not known
		}
		if !ok || a.DestinationAreaID != dest || a.RouteID != routes.routes[a.DriverID].ID || a.ETA.IsZero() || a.SeatsFree != seats {
			t.Errorf("approach %+v: want driver in %v with destination %q, its route, %d seats and an ETA", a, want, dest, seats)
		}
	}
	if got, err := NewPositions(pool, 0).Approaching(ctx, "A", "agara"); err != nil || len(got) != 2 {
		t.Errorf("Approaching(A, agara) = %+v, %v; want the driver to agara and the one with no destination written", got, err)
	}
}

// When an approach begins, that driver's position is written at once and
// alone (the others wait for the next tick); the write visits only the
// drivers whose approach began, however many drivers there are.
func TestApproachBeganIsWrittenAlone(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	ids := make([]uuid.UUID, 3)
	routes := &fakeRoutes{routes: map[uuid.UUID]Route{}}
	for i := range ids {
		ids[i] = newDriver(t, pool)
		routes.routes[ids[i]] = Route{ID: uuid.New(), DestinationAreaID: "kudlu-gate", SeatsFree: 3, Ahead: []Station{{ID: "A", Point: base, RadiusM: 500}}}
	}
	s := New(pool, Config{}, routes, &fakeSink{}, fakePublisher{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	now := time.Now()
	for _, d := range ids {
		if err := s.Ingest(d, Fix{Point: north(base, -2000), At: now.Add(-50 * time.Second)}); err != nil { // far from A
			t.Fatal(err)
		}
	}
	s.refreshRoutes(ctx, true)
	if err := s.Ingest(ids[0], Fix{Point: north(base, -1990), At: now.Add(-40 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ingest(ids[1], Fix{Point: north(base, -300), At: now}); err != nil { // inside A's radius
		t.Fatal(err)
	}
	if err := s.flushPositions(ctx, true); err != nil {
		t.Fatal(err)
	}
	written := func() map[uuid.UUID]string {
		rows, err := pool.Query(ctx, "SELECT driver_id, coalesce(approaching_station_id, '') FROM driver_positions")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[uuid.UUID]string{}
		for rows.Next() {
			var id uuid.UUID
			var st string
			if err := rows.Scan(&id, &st); err != nil {
				t.Fatal(err)
			}
			out[id] = st
		}
		return out
	}
	if got := written(); len(got) != 1 || got[ids[1]] != "A" {
		t.Fatalf("after an approach began, rows %v; want only driver %s, approaching A", got, ids[1])
	}
	if len(s.began) != 0 {
		t.Errorf("%d approaches still listed after their write", len(s.began))
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := written(); len(got) != 3 {
		t.Fatalf("after the tick, rows %v; want all three drivers", got)
	}
}

// A row this replica wrote before is updated in place; one that is gone
// (the table emptied by a crash, being unlogged) is written again at the
// next write, and one newer from another replica is left alone.
func TestPositionsRewrittenAfterTheRowIsGone(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	ids := make([]uuid.UUID, 2)
	for i := range ids {
		ids[i] = newDriver(t, pool)
	}
	s := New(pool, Config{}, &fakeRoutes{}, &fakeSink{}, fakePublisher{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	now := time.Now().Add(-30 * time.Second).Truncate(time.Microsecond) // as Postgres keeps it
	send := func(d time.Duration) {
		t.Helper()
		for i, id := range ids {
			if err := s.Ingest(id, Fix{Point: north(base, float64(i*1000)+d.Seconds()), At: now.Add(d)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ats := func() map[uuid.UUID]time.Time {
		t.Helper()
		rows, err := pool.Query(ctx, "SELECT driver_id, at FROM driver_positions")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[uuid.UUID]time.Time{}
		for rows.Next() {
			var id uuid.UUID
			var at time.Time
			if err := rows.Scan(&id, &at); err != nil {
				t.Fatal(err)
			}
			out[id] = at
		}
		return out
	}
	send(0) // inserted
	send(time.Second)
	if got := ats(); len(got) != 2 || !got[ids[0]].Equal(now.Add(time.Second)) {
		t.Fatalf("after two writes, rows %v; want both at +1 s", got)
	}
	if _, err := pool.Exec(ctx, "DELETE FROM driver_positions WHERE driver_id = $1", ids[0]); err != nil {
		t.Fatal(err)
	}
	newer := now.Add(time.Hour)
	if _, err := pool.Exec(ctx, "UPDATE driver_positions SET at = $2 WHERE driver_id = $1", ids[1], newer); err != nil {
		t.Fatal(err)
	}
	send(2 * time.Second) // finds neither row to update
	send(3 * time.Second) // writes them as new
	got := ats()
	if !got[ids[0]].Equal(now.Add(3 * time.Second)) {
		t.Errorf("the deleted row is %v, want written again at +3 s", got[ids[0]])
	}
	if !got[ids[1]].Equal(newer) {
		t.Errorf("the row newer from elsewhere is %v, want left at %v", got[ids[1]], newer)
	}
}

// An approach that begins when the driver's route is first read (the fix
// that puts it in the radius was written before the route was known) is
// written at once too: the row's approaching station changed though no
// fix came with it.
func TestApproachBeganOnRouteReadIsWrittenAtOnce(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	d := newDriver(t, pool)
	routes := &fakeRoutes{routes: map[uuid.UUID]Route{
		d: {ID: uuid.New(), DestinationAreaID: "kudlu-gate", SeatsFree: 3, Ahead: []Station{{ID: "A", Point: base, RadiusM: 500}}},
	}}
	s := New(pool, Config{}, routes, &fakeSink{}, fakePublisher{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err := s.Ingest(d, Fix{Point: north(base, -300), At: time.Now()}); err != nil { // inside A, route not yet known
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.refreshRoutes(ctx, true) // the route is read: the approach begins
	if err := s.flushPositions(ctx, true); err != nil {
		t.Fatal(err)
	}
	var approaching *string
	if err := pool.QueryRow(ctx, "SELECT approaching_station_id FROM driver_positions WHERE driver_id = $1", d).Scan(&approaching); err != nil {
		t.Fatal(err)
	}
	if approaching == nil || *approaching != "A" {
		t.Fatalf("approaching_station_id = %v after the approach began, want A", approaching)
	}
}
