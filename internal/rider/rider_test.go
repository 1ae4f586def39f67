package rider

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

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
	"github.com/lastmile/lastmile/internal/station"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakeEvents records appended events, standing in for notify.
type fakeEvents struct {
	mu   sync.Mutex
	sent []string // "user kind"
}

func (f *fakeEvents) Append(_ context.Context, _ pgx.Tx, userID uuid.UUID, kind string, _ any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, userID.String()+" "+kind)
	return nil
}

type env struct {
	pool   *pgxpool.Pool
	svc    *Service
	events *fakeEvents
}

func newEnv(tb testing.TB, cfg Config) *env {
	tb.Helper()
	pool := pgtest.New(tb)
	logger := slog.New(slog.DiscardHandler)
	if err := station.New(pool, logger).Seed(context.Background()); err != nil {
		tb.Fatal(err)
	}
	ev := &fakeEvents{}
	return &env{pool: pool, svc: New(pool, cfg, ev, logger), events: ev}
}

func (e *env) rider(tb testing.TB) identity.Principal {
	tb.Helper()
	var id uuid.UUID
	err := e.pool.QueryRow(context.Background(), "INSERT INTO users (email, password_hash, name, role) VALUES ($1, 'x', 'R', 'rider') RETURNING id",
		fmt.Sprintf("r-%s@example.com", uuid.NewString()[:12])).Scan(&id)
	if err != nil {
		tb.Fatal(err)
	}
	return identity.Principal{UserID: id, Role: identity.RoleRider}
}

func (e *env) request(tb testing.TB, p identity.Principal, arrival time.Time) Request {
	tb.Helper()
	r, err := e.svc.Create(context.Background(), p.UserID, RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate", ArrivalTime: arrival.UTC().Format(time.RFC3339)})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func TestCreateRules(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	p := e.rider(t)
	soon := time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	five := 5
	for _, tc := range []struct {
		name string
		in   RequestInput
		want string
	}{
		{"an unknown station", RequestInput{StationID: "atlantis", DestinationAreaID: "kudlu-gate", ArrivalTime: soon}, "station_id"},
		{"an unknown area", RequestInput{StationID: "hsr", DestinationAreaID: "nowhere", ArrivalTime: soon}, "destination_area_id"},
		{"no arrival time", RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate"}, "arrival_time"},
		{"arrival tomorrow and a day", RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate", ArrivalTime: time.Now().Add(25 * time.Hour).UTC().Format(time.RFC3339)}, "arrival_time"},
		{"arrival an hour ago", RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate", ArrivalTime: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "arrival_time"},
		{"a party of five", RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate", ArrivalTime: soon, PartySize: &five}, "party_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Create(ctx, p.UserID, tc.in)
			var v *fault.Validation
			if !errors.As(err, &v) || len(v.Fields) != 1 || v.Fields[0].Field != tc.want {
				t.Fatalf("Create = %v, want a validation error naming only %s", err, tc.want)
			}
		})
	}
	first := e.request(t, p, time.Now().Add(10*time.Minute))
	if first.Status != Waiting || first.PartySize != 1 {
		t.Fatalf("new request = %+v, want waiting, party of 1", first)
	}
	if _, err := e.svc.Create(ctx, p.UserID, RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate", ArrivalTime: soon}); !errors.Is(err, ErrOpenRequest) {
		t.Fatalf("a second open request = %v, want ErrOpenRequest", err)
	}
}

// A request is its rider's and the operators': anyone else reads it as
// unknown.
func TestReadIsForItsRiderAndOperators(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	p, other := e.rider(t), e.rider(t)
	req := e.request(t, p, time.Now().Add(10*time.Minute))
	read := func(who identity.Principal) (Request, error) {
		return postgres.InTxValue(ctx, e.pool, func(tx pgx.Tx) (Request, error) { return e.svc.Read(ctx, tx, who, req.ID) })
	}
	if got, err := read(p); err != nil || got.ID != req.ID {
		t.Fatalf("its rider reads %+v, %v", got, err)
	}
	if _, err := read(other); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another rider reads %v, want ErrNotFound", err)
	}
	if got, err := read(identity.Principal{UserID: uuid.New(), Role: identity.RoleOperator}); err != nil || got.ID != req.ID {
		t.Fatalf("an operator reads %+v, %v", got, err)
	}
}

// Cancelling a waiting request locks it first; one that stopped waiting
// meanwhile (matched, or expired) makes the cancel start over (ErrChanged)
// rather than cancel it under the wrong rule. (trip.CancelRequest starts
// over on it; the matched case is tested there.)
func TestCancelWaitingStartsOverWhenTheRequestChanged(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	p := e.rider(t)
	cancel := func(id uuid.UUID) (Request, error) {
		return postgres.InTxValue(ctx, e.pool, func(tx pgx.Tx) (Request, error) {
			if err := e.svc.CancelWaiting(ctx, tx, id); err != nil {
				return Request{}, err
			}
			return e.svc.TellCancelled(ctx, tx, id)
		})
	}
	req := e.request(t, p, time.Now().Add(10*time.Minute))
	got, err := cancel(req.ID)
	if err != nil || got.Status != Cancelled {
		t.Fatalf("cancel a waiting request = %+v, %v; want cancelled", got, err)
	}
	if want := p.UserID.String() + " ride.cancelled"; len(e.events.sent) != 1 || e.events.sent[0] != want {
		t.Fatalf("events %v, want the rider told %q", e.events.sent, want)
	}

	// Read as waiting, then expired before the cancel locks it.
	req = e.request(t, p, time.Now().Add(-5*time.Minute))
	e.svc.now = func() time.Time { return time.Now().Add(time.Hour) }
	if n, err := e.svc.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireDue = %d, %v", n, err)
	}
	if _, err := cancel(req.ID); !errors.Is(err, ErrChanged) {
		t.Fatalf("CancelWaiting on an expired request = %v, want ErrChanged", err)
	}
	if got, err := e.svc.Get(ctx, p, req.ID); err != nil || got.Status != Expired {
		t.Fatalf("after the refused cancel the request is %+v, %v; want still expired", got, err)
	}
}

// Waiting requests expire ExpireAfter past their arrival time, and their
// riders are told; others are left alone.
func TestExpireDue(t *testing.T) {
	e := newEnv(t, Config{ExpireAfter: 30 * time.Minute})
	ctx := context.Background()
	late, onTime := e.rider(t), e.rider(t)
	stale := e.request(t, late, time.Now().Add(-5*time.Minute))
	fresh := e.request(t, onTime, time.Now().Add(20*time.Minute))
	e.svc.now = func() time.Time { return time.Now().Add(30 * time.Minute) } // stale arrived 35 minutes before

	n, err := e.svc.ExpireDue(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ExpireDue = %d, %v; want 1", n, err)
	}
	if got, _ := e.svc.Get(ctx, late, stale.ID); got.Status != Expired {
		t.Fatalf("the late request is %s, want expired", got.Status)
	}
	if got, _ := e.svc.Get(ctx, onTime, fresh.ID); got.Status != Waiting {
		t.Fatalf("the request on time is %s, want waiting", got.Status)
	}
	if want := late.UserID.String() + " ride.expired"; len(e.events.sent) != 1 || e.events.sent[0] != want {
		t.Fatalf("events %v, want only %q", e.events.sent, want)
	}
}
