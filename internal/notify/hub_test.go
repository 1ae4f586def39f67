package notify

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/identity"
)

// hubFixture is a hub and the part of a Service that deliver uses, with
// no database: the tests below never get as far as loading events.
type hubFixture struct {
	tb  testing.TB
	s   *Service
	cfg Config
}

func newHubFixture(tb testing.TB, cfg Config) *hubFixture {
	tb.Helper()
	if err := cfg.defaults(); err != nil {
		tb.Fatal(err)
	}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	s := &Service{cfg: cfg, m: m, now: time.Now, logger: slog.New(slog.DiscardHandler), hub: newHub(m, cfg.MaxSocketsPerUser)}
	return &hubFixture{tb: tb, s: s, cfg: cfg}
}

// socket adds a ready socket of user with token.
func (f *hubFixture) socket(user uuid.UUID, token string) *socket {
	f.tb.Helper()
	k := newSocket(identity.Principal{UserID: user, Role: identity.RoleRider}, f.cfg, f.s.m.closes)
	k.token = token
	if err := f.s.hub.add(k); err != nil {
		f.tb.Fatal(err)
	}
	f.s.hub.setReady(k)
	return k
}

func (f *hubFixture) state(user uuid.UUID) fetchState {
	f.s.hub.mu.Lock()
	defer f.s.hub.mu.Unlock()
	if st := f.s.hub.streams[user]; st != nil {
		return st.state
	}
	return idle
}

// fetcher runs hub.next in the background, as a fetchLoop does; its jobs
// arrive on the returned channel.
func (f *hubFixture) fetcher(ctx context.Context) <-chan []fetchJob {
	out := make(chan []fetchJob, 1)
	go func() {
		jobs, ok := f.s.hub.next(ctx, fetchBatch)
		if ok {
			out <- jobs
		}
		close(out)
	}()
	return out
}

// A wake-up during a load runs the load again afterwards (rerun), and a
// user is queued at most once however many wake-ups come.
func TestHubRerunsALoadWokenWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHubFixture(t, Config{})
		u := uuid.New()
		f.socket(u, "t") // setReady queues it
		if got := f.state(u); got != queued {
			t.Fatalf("after setReady the user is %v, want queued", got)
		}
		f.s.hub.markDirty(u)
		if n := len(f.s.hub.queue); n != 1 {
			t.Fatalf("queue holds %d entries, want the user once", n)
		}

		jobs := <-f.fetcher(t.Context())
		if len(jobs) != 1 || f.state(u) != running {
			t.Fatalf("fetcher took %d jobs, user %v; want 1 job, running", len(jobs), f.state(u))
		}
		f.s.hub.markDirty(u) // an event arrives during the load
		f.s.hub.markDirty(u)
		if got := f.state(u); got != rerun {
			t.Fatalf("woken while running: %v, want rerun", got)
		}
		f.s.hub.done(jobs[0].st, false)
		if got := f.state(u); got != queued {
			t.Fatalf("after a load marked rerun: %v, want queued again", got)
		}
		jobs = <-f.fetcher(t.Context())
		f.s.hub.done(jobs[0].st, false)
		if got := f.state(u); got != idle {
			t.Fatalf("after a load with no wake-up: %v, want idle", got)
		}

		// An idle fetcher sleeps until a user is queued.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		next := f.fetcher(ctx)
		synctest.Wait()
		select {
		case <-next:
			t.Fatal("the fetcher returned with nothing queued")
		default:
		}
		f.s.hub.markDirty(u)
		synctest.Wait()
		if jobs := <-next; len(jobs) != 1 || jobs[0].st.user != u {
			t.Fatalf("woken fetcher got %v, want the user's job", jobs)
		}
	})
}

// A user whose every socket leaves while queued is dropped from the queue
// without a load, and a fetcher keeps waiting; it stops when cancelled.
func TestHubDropsAUserRemovedWhileQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHubFixture(t, Config{})
		u := uuid.New()
		k := f.socket(u, "t")
		f.s.hub.remove(k)
		if _, ok := f.s.hub.streams[u]; ok {
			t.Fatal("the stream outlived its last socket")
		}

		ctx, cancel := context.WithCancel(t.Context())
		next := f.fetcher(ctx)
		synctest.Wait()
		select {
		case jobs := <-next:
			t.Fatalf("a removed user was loaded: %v", jobs)
		default:
		}
		f.s.hub.mu.Lock()
		n := len(f.s.hub.queue)
		f.s.hub.mu.Unlock()
		if n != 0 {
			t.Fatalf("queue holds %d entries after the fetcher passed, want 0", n)
		}
		cancel()
		if _, ok := <-next; ok {
			t.Fatal("a cancelled fetcher returned jobs")
		}
	})
}

// A socket whose buffer stays full is marked behind; it is closed with
// 1008 once it has been behind for longer than SlowTimeout, not before.
func TestHubClosesASocketSlowForLongerThanSlowTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHubFixture(t, Config{SendBuffer: 2, SlowTimeout: 10 * time.Second})
		u := uuid.New()
		k := f.socket(u, "t")
		for range k.sendCap {
			k.queueLocked(outMsg{seq: 0})
		}
		load := func() {
			jobs := <-f.fetcher(t.Context())
			f.s.deliver(t.Context(), jobs)
			f.s.hub.done(jobs[0].st, false)
			f.s.hub.markDirty(u)
		}
		load()
		if k.behindSince.Load() == 0 || k.isClosing() {
			t.Fatal("a socket with a full buffer is not marked behind, or is closed at once")
		}
		time.Sleep(9 * time.Second)
		load()
		if k.isClosing() {
			t.Fatal("closed before SlowTimeout")
		}
		time.Sleep(2 * time.Second)
		load()
		if !k.isClosing() || k.why != closeSlow {
			t.Fatalf("after SlowTimeout behind: closing %v why %+v, want closed as slow", k.isClosing(), k.why)
		}
	})
}

// The tokens of all of a replica's sockets are re-checked with one call,
// and only the sockets of a token that no longer works are closed.
func TestRecheckTokensClosesOnlyRevokedSocketsInOneCall(t *testing.T) {
	f := newHubFixture(t, Config{})
	auth := &fakeAuth{tokens: map[string]identity.Principal{}}
	f.s.auth = auth
	var kept, revoked []*socket
	for i := range 50 {
		u := uuid.New()
		tok := token(u)
		for range 2 {
			k := f.socket(u, tok)
			if i%10 == 0 {
				revoked = append(revoked, k)
			} else {
				kept = append(kept, k)
			}
		}
		if i%10 != 0 {
			auth.tokens[tok] = identity.Principal{UserID: u}
		}
	}
	f.s.recheckTokens(context.Background())
	if auth.rechecks != 1 {
		t.Fatalf("100 sockets took %d token checks, want 1", auth.rechecks)
	}
	for _, k := range revoked {
		if !k.isClosing() || k.why != closeRevoked {
			t.Fatalf("socket of a revoked token: closing %v why %+v, want closed as revoked", k.isClosing(), k.why)
		}
	}
	for _, k := range kept {
		if k.isClosing() {
			t.Fatal("a socket of a valid token was closed")
		}
	}
}
