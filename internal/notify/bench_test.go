package notify

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/postgres"
)

// users inserts n riders at once and returns their ids.
func (e *env) users(tb testing.TB, n int) []uuid.UUID {
	tb.Helper()
	rows, err := e.pool.Query(context.Background(), `
		INSERT INTO users (email, password_hash, name, role)
		SELECT 'bench' || i || '-' || gen_random_uuid() || '@example.com', 'x', 'Bench', 'rider'
		FROM generate_series(1, $1) AS i
		RETURNING id`, n)
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		tb.Fatal(err)
	}
	e.auth.mu.Lock()
	for _, id := range ids {
		e.auth.tokens[token(id)] = identity.Principal{UserID: id, Role: identity.RoleRider}
	}
	e.auth.mu.Unlock()
	return ids
}

// BenchmarkDeliveryTo1000Sockets measures stored events delivered per
// second when each of 1,000 open sockets (one user each) gets one event per
// round; events are appended 100 to a transaction by 10 writers.
func BenchmarkDeliveryTo1000Sockets(b *testing.B) {
	const sockets = 1000
	e := newEnv(b)
	a := e.replica(b, testConfig())
	users := e.users(b, sockets)

	var received atomic.Int64
	var wg sync.WaitGroup
	for _, u := range users {
		c := a.connect(b, u, "")
		wg.Go(func() {
			var last int64
			for {
				m, err := c.Read(time.Minute)
				if err != nil {
					return // closed at the end
				}
				if m.Seq != last+1 {
					b.Errorf("socket got seq %d after %d", m.Seq, last)
					return
				}
				last = m.Seq
				received.Add(1)
			}
		})
	}
	b.Cleanup(func() {
		a.svc.GoAway(context.Background())
		wg.Wait()
	})

	start := time.Now()
	for b.Loop() {
		e.appendRound(b, a.svc, users)
	}
	want := int64(b.N) * sockets
	for received.Load() < want {
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("delivered %d of %d", received.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(want)/elapsed.Seconds(), "events/s")
}

// appendRound appends one event for each of users, 100 to a transaction,
// from 10 goroutines at once.
func (e *env) appendRound(tb testing.TB, svc *Service, users []uuid.UUID) {
	ctx := context.Background()
	var g sync.WaitGroup
	for batch := range slices.Chunk(users, 100) {
		g.Go(func() {
			msgs := make([]Message, len(batch))
			for i, u := range batch {
				msgs[i] = Message{UserID: u, Kind: "trip.updated", Data: map[string]string{"status": "active"}}
			}
			if err := postgres.InTx(ctx, e.pool, func(tx pgx.Tx) error {
				_, err := svc.AppendMany(ctx, tx, msgs)
				return err
			}); err != nil {
				tb.Error(err)
			}
		})
	}
	g.Wait()
}

// BenchmarkAppend measures appends alone, with no socket open, for
// comparison with BenchmarkDeliveryTo1000Sockets.
func BenchmarkAppend(b *testing.B) {
	e := newEnv(b)
	a := e.replica(b, testConfig())
	users := e.users(b, 1000)
	start := time.Now()
	for b.Loop() {
		e.appendRound(b, a.svc, users)
	}
	b.ReportMetric(float64(b.N*len(users))/time.Since(start).Seconds(), "events/s")
}

// BenchmarkCommitToDelivery measures the time from a commit returning to
// the event arriving at a socket, on the replica that appended it and on
// another replica.
func BenchmarkCommitToDelivery(b *testing.B) {
	for _, tc := range []struct {
		name     string
		replicas int
	}{{"same_replica", 1}, {"other_replica", 2}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b)
			writer := e.replica(b, testConfig())
			reader := writer
			if tc.replicas == 2 {
				reader = e.replica(b, testConfig())
			}
			u := e.user(b, identity.RoleRider)
			c := reader.connect(b, u, "")
			ctx := context.Background()
			var lat []time.Duration
			var seq int64
			for b.Loop() {
				err := postgres.InTx(ctx, e.pool, func(tx pgx.Tx) error {
					_, err := writer.svc.Append(ctx, tx, u, "trip.updated", map[string]string{"status": "active"})
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				seq++
				if m := c.Next(); m.Seq != seq {
					b.Fatalf("got seq %d, want %d", m.Seq, seq)
				}
				lat = append(lat, time.Since(committed))
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			if testing.Verbose() {
				b.Logf("%d events: p50 %.2f ms, p99 %.2f ms", len(lat), pct(0.5), pct(0.99))
			}
		})
	}
}
