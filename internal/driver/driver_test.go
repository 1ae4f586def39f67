package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
	"github.com/lastmile/lastmile/internal/station"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type env struct {
	pool *pgxpool.Pool
	svc  *Service
}

// newEnv is a fresh database with the default station catalog.
func newEnv(tb testing.TB) *env {
	tb.Helper()
	pool := pgtest.New(tb)
	logger := slog.New(slog.DiscardHandler)
	if err := station.New(pool, logger).Seed(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return &env{pool: pool, svc: New(pool, logger)}
}

func (e *env) driver(tb testing.TB) uuid.UUID {
	tb.Helper()
	var id uuid.UUID
	err := e.pool.QueryRow(context.Background(), "INSERT INTO users (email, password_hash, name, role) VALUES ($1, 'x', 'D', 'driver') RETURNING id",
		fmt.Sprintf("d-%s@example.com", uuid.NewString()[:12])).Scan(&id)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func (e *env) route(tb testing.TB, driverID uuid.UUID, seats int) Route {
	tb.Helper()
	r, err := e.svc.Create(context.Background(), driverID, RouteInput{StationIDs: []string{"silkboard", "hsr"}, DestinationAreaID: "kudlu-gate", Seats: seats})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func fields(err error) []string {
	var v *fault.Validation
	if !errors.As(err, &v) {
		return nil
	}
	var out []string
	for _, f := range v.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestCreateRefusesWhatCannotBeDriven(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := e.driver(t)
	for _, tc := range []struct {
		name string
		in   RouteInput
		want string
	}{
		{"no stations", RouteInput{DestinationAreaID: "kudlu-gate", Seats: 2}, "station_ids"},
		{"a station twice", RouteInput{StationIDs: []string{"hsr", "hsr"}, DestinationAreaID: "kudlu-gate", Seats: 2}, "station_ids[1]"},
		{"an unknown station", RouteInput{StationIDs: []string{"hsr", "atlantis"}, DestinationAreaID: "kudlu-gate", Seats: 2}, "station_ids[1]"},
		{"an unknown area", RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "nowhere", Seats: 2}, "destination_area_id"},
		{"no seats", RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 0}, "seats"},
		{"a bus", RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 9}, "seats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Create(ctx, d, tc.in)
			if got := fields(err); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("Create = %v, want a validation error naming only %s", err, tc.want)
			}
		})
	}
	if _, err := e.svc.Current(ctx, d); !errors.Is(err, fault.Of(fault.NotFound)) {
		t.Fatalf("after refused creates, Current = %v; want no route (nothing half-created)", err)
	}
	e.route(t, d, 2)
	if _, err := e.svc.Create(ctx, d, RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 2}); !errors.Is(err, ErrActiveRoute) {
		t.Fatalf("a second active route = %v, want ErrActiveRoute", err)
	}
}

// Ending a route: only its driver may, only while it is active, and
// completing waits until every seat is free again; cancelling (trip's
// use case) locks the route with LockActive and ends it with End.
func TestEndingARoute(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d, other := e.driver(t), e.driver(t)
	r := e.route(t, d, 3)

	if _, err := e.svc.Complete(ctx, other, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another driver completing = %v, want ErrNotFound", err)
	}
	if err := postgres.InTx(ctx, e.pool, func(tx pgx.Tx) error { return e.svc.Reserve(ctx, tx, r.ID, 2) }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Complete(ctx, d, r.ID); !errors.Is(err, ErrRidersAboard) {
		t.Fatalf("completing with 2 seats taken = %v, want ErrRidersAboard", err)
	}
	if err := postgres.InTx(ctx, e.pool, func(tx pgx.Tx) error { return e.svc.Release(ctx, tx, r.ID, 2) }); err != nil {
		t.Fatal(err)
	}
	done, err := e.svc.Complete(ctx, d, r.ID)
	if err != nil || done.Status != Completed || len(done.StationIDs) != 2 {
		t.Fatalf("Complete = %+v, %v; want the completed route with its stations", done, err)
	}
	if _, err := e.svc.Complete(ctx, d, r.ID); !errors.Is(err, ErrNotActive) {
		t.Fatalf("completing twice = %v, want ErrNotActive", err)
	}

	r = e.route(t, d, 2) // a new route may start once the old one ended
	err = postgres.InTx(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := e.svc.LockActive(ctx, tx, other, r.ID)
		return err
	})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("another driver's LockActive = %v, want ErrNotFound", err)
	}
	cancelled, err := postgres.InTxValue(ctx, e.pool, func(tx pgx.Tx) (Route, error) {
		if _, err := e.svc.LockActive(ctx, tx, d, r.ID); err != nil {
			return Route{}, err
		}
		return e.svc.End(ctx, tx, r.ID, Cancelled)
	})
	if err != nil || cancelled.Status != Cancelled {
		t.Fatalf("LockActive and End = %+v, %v; want the cancelled route", cancelled, err)
	}
	if _, err := postgres.InTxValue(ctx, e.pool, func(tx pgx.Tx) (Route, error) { return e.svc.LockActive(ctx, tx, d, r.ID) }); !errors.Is(err, ErrNotActive) {
		t.Fatalf("LockActive on a cancelled route = %v, want ErrNotActive", err)
	}
}

// A seat is never sold twice: reserving more than is free fails and
// changes nothing.
func TestReserveNeverOversells(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.route(t, e.driver(t), 2)
	reserve := func(n int) error {
		return postgres.InTx(ctx, e.pool, func(tx pgx.Tx) error { return e.svc.Reserve(ctx, tx, r.ID, n) })
	}
	if err := reserve(3); !errors.Is(err, fault.Of(fault.Conflict)) {
		t.Fatalf("reserving 3 of 2 = %v, want a conflict", err)
	}
	if err := reserve(2); err != nil {
		t.Fatal(err)
	}
	if err := reserve(1); !errors.Is(err, fault.Of(fault.Conflict)) {
		t.Fatalf("reserving 1 of 0 = %v, want a conflict", err)
	}
	if got, err := e.svc.Peek(ctx, r.ID); err != nil || got.SeatsFree != 0 {
		t.Fatalf("seats free = %d (%v), want 0", got.SeatsFree, err)
	}
}
