package trip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/driver"
	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
	"github.com/lastmile/lastmile/internal/rider"
	"github.com/lastmile/lastmile/internal/station"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakeEvents records appended events, standing in for notify.
type fakeEvents struct {
	mu   sync.Mutex
	sent map[uuid.UUID][]string
}

func (f *fakeEvents) Append(_ context.Context, _ pgx.Tx, userID uuid.UUID, kind string, _ any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent[userID] = append(f.sent[userID], kind)
	return nil
}

func (f *fakeEvents) of(user uuid.UUID) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent[user]...)
}

// world is the trip service over real driver and rider services, with one
// driver on an active route through hsr and one rider matched to it.
type world struct {
	pool    *pgxpool.Pool
	trips   *Service
	drivers *driver.Service
	riders  *rider.Service
	events  *fakeEvents

	driver, rider identity.Principal
	route         driver.Route
	request       rider.Request
	tripID        uuid.UUID
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	ctx := context.Background()
	pool := pgtest.New(tb)
	logger := slog.New(slog.DiscardHandler)
	if err := station.New(pool, logger).Seed(ctx); err != nil {
		tb.Fatal(err)
	}
	w := &world{pool: pool, events: &fakeEvents{sent: map[uuid.UUID][]string{}}}
	w.drivers = driver.New(pool, logger)
	w.riders = rider.New(pool, rider.Config{}, w.events, logger)
	w.trips = New(pool, Config{}, w.events, w.riders, w.drivers, logger)
	w.driver, w.rider = w.user(tb, identity.RoleDriver), w.user(tb, identity.RoleRider)
	var err error
	if w.route, err = w.drivers.Create(ctx, w.driver.UserID, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 3}); err != nil {
		tb.Fatal(err)
	}
	w.request, err = w.riders.Create(ctx, w.rider.UserID, rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
		ArrivalTime: time.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339)})
	if err != nil {
		tb.Fatal(err)
	}
	// Matched as the matching domain does it: route, trip, request, seats.
	err = postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := w.drivers.Lock(ctx, tx, w.route.ID); err != nil {
			return err
		}
		v, err := w.trips.Assign(ctx, tx, Assignment{DriverID: w.driver.UserID, RouteID: w.route.ID, StationID: "hsr", DestinationAreaID: "kudlu-gate",
			Riders: []Rider{{RiderID: w.rider.UserID, RequestID: w.request.ID, PartySize: 1}}})
		if err != nil {
			return err
		}
		w.tripID = v.ID
		if err := w.riders.MarkMatched(ctx, tx, v.ID, []uuid.UUID{w.request.ID}); err != nil {
			return err
		}
		return w.drivers.Reserve(ctx, tx, w.route.ID, 1)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

func (w *world) user(tb testing.TB, role identity.Role) identity.Principal {
	tb.Helper()
	var id uuid.UUID
	err := w.pool.QueryRow(context.Background(), "INSERT INTO users (email, password_hash, name, role) VALUES ($1, 'x', 'U', $2) RETURNING id",
		fmt.Sprintf("%s-%s@example.com", role, uuid.NewString()[:12]), role).Scan(&id)
	if err != nil {
		tb.Fatal(err)
	}
	return identity.Principal{UserID: id, Role: role}
}

func (w *world) requestStatus(tb testing.TB) rider.Status {
	tb.Helper()
	r, err := w.riders.Get(context.Background(), w.rider, w.request.ID)
	if err != nil {
		tb.Fatal(err)
	}
	return r.Status
}

// Cancelling a route hands its matched riders back to waiting and tells
// them; only its driver may, and not with riders on board.
func TestCancelRouteHandsMatchedRidersBack(t *testing.T) {
	ctx := context.Background()
	t.Run("matched riders go back to waiting", func(t *testing.T) {
		w := newWorld(t)
		other := w.user(t, identity.RoleDriver)
		if _, err := w.trips.CancelRoute(ctx, other.UserID, w.route.ID); !errors.Is(err, driver.ErrNotFound) {
			t.Fatalf("another driver cancelling = %v, want driver.ErrNotFound", err)
		}
		r, err := w.trips.CancelRoute(ctx, w.driver.UserID, w.route.ID)
		if err != nil || r.Status != driver.Cancelled {
			t.Fatalf("CancelRoute = %+v, %v; want the cancelled route", r, err)
		}
		if got := w.requestStatus(t); got != rider.Waiting {
			t.Fatalf("the matched request is %s, want waiting again", got)
		}
		if got := w.events.of(w.rider.UserID); len(got) == 0 || got[len(got)-1] != "trip.updated" {
			t.Fatalf("the rider was told %v, want trip.updated", got)
		}
		if _, err := w.trips.CancelRoute(ctx, w.driver.UserID, w.route.ID); !errors.Is(err, driver.ErrNotActive) {
			t.Fatalf("cancelling twice = %v, want driver.ErrNotActive", err)
		}
	})
	t.Run("riders on board make it a conflict that changes nothing", func(t *testing.T) {
		w := newWorld(t)
		if _, err := w.trips.Arrived(ctx, w.driver, w.tripID); err != nil {
			t.Fatal(err)
		}
		if _, err := w.trips.PickedUp(ctx, w.driver, w.tripID, w.rider.UserID); err != nil {
			t.Fatal(err)
		}
		if _, err := w.trips.CancelRoute(ctx, w.driver.UserID, w.route.ID); !errors.Is(err, fault.Of(fault.Conflict)) {
			t.Fatalf("CancelRoute with a rider on board = %v, want a conflict", err)
		}
		if r, err := w.drivers.Peek(ctx, w.route.ID); err != nil || r.Status != driver.Active {
			t.Fatalf("the route is %+v, %v after the refused cancel; want still active", r.Status, err)
		}
	})
}

// A matched rider's cancel leaves the trip and frees the seat; one past
// pickup is a conflict.
func TestCancelRequestOfAMatchedRider(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	stranger := w.user(t, identity.RoleRider)
	if _, err := w.trips.CancelRequest(ctx, stranger, w.request.ID); !errors.Is(err, rider.ErrNotFound) {
		t.Fatalf("another rider cancelling = %v, want rider.ErrNotFound", err)
	}
	req, err := w.trips.CancelRequest(ctx, w.rider, w.request.ID)
	if err != nil || req.Status != rider.Cancelled {
		t.Fatalf("CancelRequest = %+v, %v; want cancelled", req, err)
	}
	if r, _ := w.drivers.Peek(ctx, w.route.ID); r.SeatsFree != r.SeatsTotal {
		t.Fatalf("seats free %d of %d after the only rider left, want all", r.SeatsFree, r.SeatsTotal)
	}
	if got := w.events.of(w.rider.UserID); len(got) == 0 || got[len(got)-1] != "ride.cancelled" {
		t.Fatalf("the rider was told %v, want ride.cancelled last", got)
	}
	if _, err := w.trips.CancelRequest(ctx, w.rider, w.request.ID); !errors.Is(err, fault.Of(fault.Conflict)) {
		t.Fatalf("cancelling twice = %v, want a conflict", err)
	}
}

// A rider's cancel that reads the request matched, and then finds its
// driver gave the route up meanwhile (the request is waiting again),
// starts over and cancels the waiting request instead of failing.
func TestCancelRequestStartsOverWhenTheDriverGaveUpMeanwhile(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)

	// The driver's cancel holds the route lock...
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := w.drivers.LockActive(ctx, tx, w.driver.UserID, w.route.ID); err != nil {
		t.Fatal(err)
	}
	// ...while the rider's cancel reads the request matched and waits for it.
	type result struct {
		req rider.Request
		err error
	}
	done := make(chan result, 1)
	go func() {
		req, err := w.trips.CancelRequest(ctx, w.rider, w.request.ID)
		done <- result{req, err}
	}()
	waitForLockWait(t, w.pool)
	if err := w.trips.releaseRoute(ctx, tx, w.route.ID, w.driver.UserID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.drivers.End(ctx, tx, w.route.ID, driver.Cancelled); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	res := <-done
	if res.err != nil || res.req.Status != rider.Cancelled {
		t.Fatalf("CancelRequest = %+v, %v; want the request, waiting again, cancelled", res.req, res.err)
	}
	if got := w.requestStatus(t); got != rider.Cancelled {
		t.Fatalf("the request is %s, want cancelled", got)
	}
}

// waitForLockWait polls until some session of the test database waits for
// a lock, and fails the test after 10 seconds.
func waitForLockWait(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		if err != nil {
			tb.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("no session waited for the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
