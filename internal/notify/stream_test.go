package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/notify/notifytest"
	"github.com/lastmile/lastmile/internal/postgres"
)

func TestAppendNumbersEachUsersEventsWithoutGaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	alice, bob := e.user(t, identity.RoleRider), e.user(t, identity.RoleDriver)
	ctx := context.Background()

	// A rolled-back append gives its number back.
	errRollback := errors.New("roll back")
	err := postgres.InTx(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := a.svc.Append(ctx, tx, alice, "ride.matched", nil); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}

	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				err := postgres.InTx(ctx, e.pool, func(tx pgx.Tx) error {
					// Both users in one transaction, in opposite orders: AppendMany
					// takes the locks in one order, so this cannot deadlock.
					msgs := []Message{{UserID: alice, Kind: "trip.updated", Data: map[string]int{"w": w, "i": i}}, {UserID: bob, Kind: "trip.updated"}}
					if w%2 == 1 {
						slices.Reverse(msgs)
					}
					evs, err := a.svc.AppendMany(ctx, tx, msgs)
					if err == nil && evs[0].UserID != msgs[0].UserID {
						t.Errorf("AppendMany returned events out of order")
					}
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, u := range []uuid.UUID{alice, bob} {
		rows, err := e.pool.Query(ctx, "SELECT seq FROM events WHERE user_id = $1 ORDER BY seq", u)
		if err != nil {
			t.Fatal(err)
		}
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		if len(seqs) != writers*each || seqs[0] != 1 || seqs[len(seqs)-1] != writers*each {
			t.Fatalf("user %s has seqs %v, want 1..%d", u, seqs, writers*each)
		}
	}
	if got := value(t, a.svc.m.appended); got != 2*writers*each+1 {
		t.Errorf("appended metric = %v, want %d", got, 2*writers*each+1)
	}
}

func TestLiveStreamStartsWhenTheUpgradeIsAnswered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	u := e.user(t, identity.RoleRider)
	e.append(t, a.svc, u, "ride.matched", map[string]string{"before": "connect"})
	e.append(t, a.svc, u, "trip.updated", nil)

	c := a.connect(t, u, "")
	ev := e.append(t, a.svc, u, "trip.updated", map[string]any{"status": "arrived", "n": 1})
	got := c.ExpectSeqs(3)[0]
	if got.Kind != "trip.updated" || !got.At.Equal(ev.At) || string(got.Data) != `{"n":1,"status":"arrived"}` {
		t.Fatalf("got %+v (data %s), want the appended event %+v", got, got.Data, ev)
	}
	c.ExpectQuiet()
}

func TestResumeGetsExactlyTheMissedEventsInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	u := e.user(t, identity.RoleRider)

	c := a.connect(t, u, "")
	for range 3 {
		e.append(t, a.svc, u, "trip.updated", nil)
	}
	c.ExpectSeqs(1, 2, 3)
	c.Close()

	for range 3 {
		e.append(t, a.svc, u, "trip.updated", nil)
	}
	c = a.connect(t, u, "since=3")
	c.ExpectSeqs(4, 5, 6)
	e.append(t, a.svc, u, "ride.cancelled", nil)
	c.ExpectSeqs(7)
	c.ExpectQuiet()

	// Events committed while the replay runs arrive once each, in order.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 40 {
			e.append(t, a.svc, u, "trip.updated", nil)
		}
	}()
	r := a.connect(t, u, "since=0")
	want := make([]int64, 47)
	for i := range want {
		want[i] = int64(i + 1)
	}
	r.ExpectSeqs(want...)
	<-done
	r.ExpectQuiet()
	c.ExpectSeqs(want[7:]...)
	if n := value(t, a.svc.m.replay); n != 2 {
		t.Errorf("replay histogram counted %v replays, want 2", n)
	}
}

func TestRolledBackTransactionDeliversNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	u := e.user(t, identity.RoleRider)
	c := a.connect(t, u, "")
	ctx := context.Background()

	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Append(ctx, tx, u, "ride.matched", map[string]string{"trip": "rolled back"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	e.append(t, a.svc, u, "ride.matched", map[string]string{"trip": "kept"})
	if m := c.ExpectSeqs(1)[0]; string(m.Data) != `{"trip":"kept"}` {
		t.Fatalf("got %s, want the committed event", m.Data)
	}
	c.ExpectQuiet()
}

func TestTwoReplicasDeliverEachOthersEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.replica(t, testConfig()), e.replica(t, testConfig())
	rider, driver := e.user(t, identity.RoleRider), e.user(t, identity.RoleDriver)

	onB := b.connect(t, rider, "")
	onA := a.connect(t, rider, "")
	e.append(t, a.svc, rider, "ride.matched", nil)
	e.append(t, b.svc, rider, "trip.updated", nil)
	onB.ExpectSeqs(1, 2)
	onA.ExpectSeqs(1, 2)

	// Disposable messages reach every replica, without seq, and are not stored.
	if err := a.svc.Publish(context.Background(), []uuid.UUID{rider, driver}, "driver.location", map[string]float64{"lat": 12.9, "lng": 77.6}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*notifytest.Socket{onA, onB} {
		m := c.Next()
		if m.Type != "event" || m.Kind != "driver.location" || m.Seq != 0 || string(m.Data) != `{"lat":12.9,"lng":77.6}` {
			t.Fatalf("got %+v, want a disposable driver.location", m)
		}
		c.ExpectQuiet()
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM events WHERE kind = 'driver.location'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d disposable events stored (%v)", n, err)
	}
}

func TestKilledListenerLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	u := e.user(t, identity.RoleRider)
	c := a.connect(t, u, "")
	ctx := context.Background()

	var killed bool
	err := e.pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, ListenerName).Scan(&killed)
	if err != nil || !killed {
		t.Fatalf("terminate the listener: %v %v", killed, err)
	}
	// Appended while the listener is down or coming back: no notification
	// may reach this replica for some of them.
	for range 5 {
		e.append(t, a.svc, u, "trip.updated", nil)
	}
	c.ExpectSeqs(1, 2, 3, 4, 5)
	eventually(t, 10*time.Second, "the listener to come back", func() bool { return a.svc.listens.Load() >= 2 })
	e.append(t, a.svc, u, "trip.updated", nil)
	c.ExpectSeqs(6)
	c.ExpectQuiet()
	if got := value(t, a.svc.m.reconnects); got != 1 {
		t.Errorf("reconnects = %v, want 1", got)
	}
}

func TestCatchUpFindsEventsWithoutNotifications(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.CatchUpInterval = 50 * time.Millisecond
	a := e.replica(t, cfg)
	u := e.user(t, identity.RoleRider)
	c := a.connect(t, u, "")
	// An event row written without its NOTIFY, as if the notification had
	// been lost.
	_, err := e.pool.Exec(context.Background(), `
		WITH s AS (INSERT INTO event_streams (user_id, last_seq) VALUES ($1, 1) RETURNING user_id, last_seq)
		INSERT INTO events (user_id, seq, kind, data, at) SELECT user_id, last_seq, 'trip.updated', '{}', now() FROM s`, u)
	if err != nil {
		t.Fatal(err)
	}
	c.ExpectSeqs(1)
}

func TestSlowReaderIsClosedAndOthersKeepReceiving(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.SendBuffer = 8
	cfg.SlowTimeout = 200 * time.Millisecond
	cfg.CatchUpInterval = 50 * time.Millisecond
	a := e.replica(t, cfg)
	u := e.user(t, identity.RoleRider)
	slow := a.connect(t, u, "")
	fast := a.connect(t, u, "")

	var (
		mu       sync.Mutex
		received int64
	)
	readerDone := make(chan error, 1)
	go func() {
		for {
			m, err := fast.Read(30 * time.Second)
			if err != nil {
				readerDone <- err
				return
			}
			mu.Lock()
			if m.Seq != received+1 {
				readerDone <- errors.New("fast reader got an event out of order")
				mu.Unlock()
				return
			}
			received = m.Seq
			mu.Unlock()
		}
	}()

	// Big events fill the slow client's TCP buffers, then its send buffer.
	big := map[string]string{"pad": strings.Repeat("x", 64<<10)}
	slowClosed := func() bool { return value(t, a.svc.m.closes.WithLabelValues("slow")) == 1 }
	var appended int64
	for !slowClosed() {
		if appended == 2000 {
			t.Fatal("the slow reader was never closed")
		}
		e.append(t, a.svc, u, "trip.updated", big)
		appended++
	}
	// The fast socket got every event, promptly.
	e.append(t, a.svc, u, "ride.matched", nil)
	appended++
	eventually(t, 5*time.Second, "the fast reader to get every event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return received == appended
	})
	select {
	case err := <-readerDone:
		t.Fatalf("fast reader: %v", err)
	default:
	}

	// The slow client reads what reached it, then the close.
	if code, reason := slow.ExpectClose(20 * time.Second); code != websocket.StatusPolicyViolation || !strings.Contains(reason, "since") {
		t.Fatalf("slow reader closed with %d %q, want 1008 telling it to resume with since", code, reason)
	}
}

func TestClientMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.MaxBadMessages = 3
	cfg.MessageRate, cfg.MessageBurst = 1, 6
	a := e.replica(t, cfg)
	driver := e.user(t, identity.RoleDriver)

	type fix struct {
		Type string  `json:"type"`
		Lat  float64 `json:"lat"`
	}
	var (
		mu  sync.Mutex
		got []fix
	)
	a.svc.Handle("location", func(ctx context.Context, p identity.Principal, raw json.RawMessage) error {
		if p.Role != identity.RoleDriver {
			return fault.New(fault.Forbidden, "only drivers send locations")
		}
		var f fix
		if err := json.Unmarshal(raw, &f); err != nil {
			return fault.New(fault.Malformed, "bad location")
		}
		if f.Lat > 90 {
			return fault.New(fault.Invalid, "lat must be at most 90")
		}
		mu.Lock()
		got = append(got, f)
		mu.Unlock()
		return nil
	})

	a.svc.Handle("crash", func(context.Context, identity.Principal, json.RawMessage) error { panic("boom") })

	t.Run("a handler that panics gets an internal error", func(t *testing.T) {
		c := a.connect(t, driver, "")
		c.SendRaw([]byte(`{"type": "crash"}`))
		if m := c.Next(); m.Type != "error" || m.Code != "internal" {
			t.Fatalf("got %+v, want an internal error", m)
		}
		c.ExpectQuiet()
	})
	t.Run("handled message", func(t *testing.T) {
		c := a.connect(t, driver, "")
		c.Send(fix{Type: "location", Lat: 12.9})
		c.ExpectQuiet()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 || got[0].Lat != 12.9 {
			t.Fatalf("handler got %+v", got)
		}
	})
	t.Run("bad messages get errors and the socket stays open", func(t *testing.T) {
		c := a.connect(t, driver, "")
		for _, tc := range []struct {
			raw, code, mentions string
		}{
			{`{"type": "location", "lat": 91}`, "invalid", "lat"},
			{`not json`, "malformed", "JSON"},
			{`{"lat": 1}`, "malformed", "type"},
			{`{"type": "teleport"}`, "unknown_type", "teleport"},
		} {
			c.SendRaw([]byte(tc.raw))
			m := c.Next()
			if m.Type != "error" || m.Code != tc.code || !strings.Contains(m.Message, tc.mentions) {
				t.Errorf("%s: got %+v, want error %s mentioning %q", tc.raw, m, tc.code, tc.mentions)
			}
		}
		c.ExpectQuiet()
		e.append(t, a.svc, driver, "trip.assigned", nil)
		if m := c.Next(); m.Type != "event" {
			t.Fatalf("got %+v, want the event", m)
		}
	})
	t.Run("repeated misbehaviour closes with 1008", func(t *testing.T) {
		c := a.connect(t, driver, "")
		for range 4 {
			c.SendRaw([]byte(`{"type": "teleport"}`))
		}
		if code, _ := c.ExpectClose(5 * time.Second); code != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %d, want 1008", code)
		}
	})
	t.Run("flooding is rate limited and then closed", func(t *testing.T) {
		c := a.connect(t, driver, "")
		codes := map[string]int{}
		for range 20 {
			c.SendRaw([]byte(`{"type": "ping"}`))
		}
		for {
			m, err := c.Read(5 * time.Second)
			if err != nil {
				if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
					t.Fatalf("closed with %v, want 1008", err)
				}
				break
			}
			codes[m.Type+":"+m.Code]++
		}
		if codes["error:rate_limited"] == 0 || codes["pong:"] == 0 {
			t.Fatalf("got %v, want pongs then rate_limited errors", codes)
		}
	})
	t.Run("a message over 64 KiB closes with 1009", func(t *testing.T) {
		c := a.connect(t, driver, "")
		c.SendRaw([]byte(`{"type": "location", "pad": "` + strings.Repeat("x", MaxClientMessage) + `"}`))
		if code, _ := c.ExpectClose(5 * time.Second); code != websocket.StatusMessageTooBig {
			t.Fatalf("closed with %d, want 1009", code)
		}
	})
	t.Run("a message of 64 KiB is read", func(t *testing.T) {
		c := a.connect(t, driver, "")
		head := `{"type": "location", "lat": 1, "pad": "`
		c.SendRaw([]byte(head + strings.Repeat("x", MaxClientMessage-len(head)-2) + `"}`))
		c.ExpectQuiet()
	})
}

func TestDisconnectUserClosesSocketsOnEveryReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.replica(t, testConfig()), e.replica(t, testConfig())
	u, other := e.user(t, identity.RoleRider), e.user(t, identity.RoleRider)
	onA, onB := a.connect(t, u, ""), b.connect(t, u, "")
	otherOnB := b.connect(t, other, "")

	start := time.Now()
	if err := a.svc.DisconnectUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*notifytest.Socket{"replica a": onA, "replica b": onB} {
		if code, reason := c.ExpectClose(time.Second); code != websocket.StatusNormalClosure || reason != "signed out" {
			t.Fatalf("%s: closed with %d %q, want 1000 signed out", name, code, reason)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("sockets closed after %s, want within a second", d)
	}
	e.append(t, a.svc, other, "trip.updated", nil)
	otherOnB.ExpectSeqs(1)
}

func TestSinceTooOld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	u := e.user(t, identity.RoleRider)
	for range 3 {
		e.append(t, a.svc, u, "trip.updated", nil)
	}
	e.clock.Advance(6 * 24 * time.Hour)
	e.append(t, a.svc, u, "trip.updated", nil)
	e.append(t, a.svc, u, "trip.updated", nil)
	e.clock.Advance(2 * 24 * time.Hour)
	if n, err := a.svc.cleanup(context.Background()); err != nil || n != 3 {
		t.Fatalf("cleanup deleted %d (%v), want the 3 events older than 7 days", n, err)
	}

	t.Run("the next event is kept", func(t *testing.T) {
		c := a.connect(t, u, "since=3")
		c.ExpectSeqs(4, 5)
		c.ExpectQuiet()
	})
	t.Run("since=0 replays what is kept", func(t *testing.T) {
		c := a.connect(t, u, "since=0")
		c.ExpectSeqs(4, 5)
		c.ExpectQuiet()
	})
	last := int64(5)
	for _, since := range []string{"1", "2", "9"} {
		t.Run("since="+since, func(t *testing.T) {
			c := a.connect(t, u, "since="+since)
			m := c.Next()
			if m.Type != "error" || m.Code != "since_too_old" || m.LastSeq == nil || *m.LastSeq != last {
				t.Fatalf("got %+v, want since_too_old with last_seq %d", m, last)
			}
			last++
			// The stream goes on after last_seq.
			ev := e.append(t, a.svc, u, "trip.updated", nil)
			c.ExpectSeqs(ev.Seq)
		})
	}
	t.Run("over REST", func(t *testing.T) {
		if resp := a.do(t, "GET", "/api/v1/events?since=1", u, "", nil); resp.StatusCode != http.StatusConflict {
			t.Fatalf("GET /events?since=1 = %d, want 409", resp.StatusCode)
		}
		var page EventPage
		if resp := a.do(t, "GET", "/api/v1/events?limit=1", u, "", &page); resp.StatusCode != 200 || len(page.Events) != 1 || page.Events[0].Seq != 4 || page.LastSeq != last {
			t.Fatalf("GET /events?limit=1 = %d %+v, want the oldest kept event (4) and last_seq %d", resp.StatusCode, page, last)
		}
	})
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.AllowedOrigins = []string{"*.lastmile.test", "https://partner.example"}
	a := e.replica(t, cfg)
	u := e.user(t, identity.RoleRider)
	own := a.srv.Listener.Addr().String()

	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
		want   int
	}{
		{"header token", "", http.Header{"Authorization": {"Bearer " + token(u)}}, http.StatusSwitchingProtocols},
		{"query token", "access_token=" + token(u), nil, http.StatusSwitchingProtocols},
		{"no token", "", nil, http.StatusUnauthorized},
		{"unknown token", "access_token=nope", nil, http.StatusUnauthorized},
		{"own origin", "access_token=" + token(u), http.Header{"Origin": {"http://" + own}}, http.StatusSwitchingProtocols},
		{"allowed origin", "access_token=" + token(u), http.Header{"Origin": {"https://app.lastmile.test"}}, http.StatusSwitchingProtocols},
		{"allowed origin with scheme", "access_token=" + token(u), http.Header{"Origin": {"https://partner.example"}}, http.StatusSwitchingProtocols},
		{"other scheme", "access_token=" + token(u), http.Header{"Origin": {"http://partner.example"}}, http.StatusForbidden},
		{"foreign origin", "access_token=" + token(u), http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"null origin", "access_token=" + token(u), http.Header{"Origin": {"null"}}, http.StatusForbidden},
		{"bad since", "since=-1&access_token=" + token(u), nil, http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, resp, err := a.dial(ctx, tc.query, tc.header)
			if conn != nil {
				conn.CloseNow()
			}
			if resp == nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("answered %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != http.StatusSwitchingProtocols && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("refusal is %q, want problem+json", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestEventsOverREST(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	u, other := e.user(t, identity.RoleRider), e.user(t, identity.RoleRider)
	for i := range 25 {
		e.append(t, a.svc, u, "trip.updated", map[string]int{"i": i + 1})
	}
	e.append(t, a.svc, other, "trip.updated", nil)

	var page EventPage
	if resp := a.do(t, "GET", "/api/v1/events", u, "", &page); resp.StatusCode != 200 {
		t.Fatalf("GET /events = %d", resp.StatusCode)
	}
	if len(page.Events) != 20 || page.Events[0].Seq != 1 || page.Events[19].Seq != 20 || page.NextCursor != "20" || page.LastSeq != 25 {
		t.Fatalf("first page: %d events, next %q, last_seq %d", len(page.Events), page.NextCursor, page.LastSeq)
	}
	if string(page.Events[0].Data) != `{"i":1}` || page.Events[0].Kind != "trip.updated" {
		t.Fatalf("first event %+v", page.Events[0])
	}
	page = EventPage{}
	a.do(t, "GET", "/api/v1/events?cursor=20&limit=100", u, "", &page)
	if len(page.Events) != 5 || page.Events[0].Seq != 21 || page.NextCursor != "" {
		t.Fatalf("second page: %+v", page)
	}
	page = EventPage{}
	a.do(t, "GET", "/api/v1/events?since=22&limit=2", u, "", &page)
	if len(page.Events) != 2 || page.Events[1].Seq != 24 || page.NextCursor != "24" {
		t.Fatalf("limit 2 after 22: %+v", page)
	}
	for _, tc := range []struct {
		path string
		user uuid.UUID
		want int
	}{
		{"/api/v1/events", uuid.Nil, http.StatusUnauthorized},
		{"/api/v1/events?limit=101", u, http.StatusUnprocessableEntity},
		{"/api/v1/events?limit=0", u, http.StatusUnprocessableEntity},
		{"/api/v1/events?since=x", u, http.StatusUnprocessableEntity},
		{"/api/v1/events?since=1&cursor=2", u, http.StatusBadRequest},
	} {
		if resp := a.do(t, "GET", tc.path, tc.user, "", nil); resp.StatusCode != tc.want {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
	}
}

func TestGoAwayClosesSocketsAndRefusesNewOnes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	u := e.user(t, identity.RoleRider)
	c := a.connect(t, u, "")
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		a.svc.GoAway(context.Background())
	}()
	if code, _ := c.ExpectClose(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("closed with %d, want 1001", code)
	}
	<-closed
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := a.dial(ctx, "access_token="+token(u), nil)
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after GoAway: %v %v, want 503", resp, err)
	}
	if got := value(t, a.svc.m.sockets); got != 0 {
		t.Errorf("open sockets = %v, want 0", got)
	}
}

func TestUnansweredPingsCloseTheSocket(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.PingInterval = 50 * time.Millisecond
	cfg.PongTimeout = 50 * time.Millisecond
	a := e.replica(t, cfg)
	u := e.user(t, identity.RoleRider)
	a.connect(t, u, "") // never reads, so never answers a ping
	eventually(t, 5*time.Second, "the socket to be dropped", func() bool {
		return value(t, a.svc.m.closes.WithLabelValues("no_pong")) == 1 && value(t, a.svc.m.sockets) == 0
	})

	// A client that reads answers pings and stays.
	c := a.connect(t, u, "")
	for range 5 {
		c.ExpectQuiet()
		time.Sleep(30 * time.Millisecond) // let pings happen in between
	}
}

func TestDisposableMessagesGiveWayToStoredEvents(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	k := newSocket(identity.Principal{UserID: uuid.New()}, Config{SendBuffer: 8, MessageRate: 1, MessageBurst: 1}, m.closes)
	for i := range 8 {
		if ok := k.offerDisposable([]byte("{}")); ok != (i < 5) {
			t.Fatalf("offer %d with %d queued: %t", i, len(k.send), ok)
		}
	}
	msgs := []outMsg{{seq: 1}, {seq: 2}, {seq: 3}, {seq: 4}}
	k.offerStored(msgs, 0, false, time.Now())
	if k.cursor.Load() != 3 || k.behindSince.Load() == 0 {
		t.Fatalf("cursor %d behind %d: want 3 stored events taken and the socket behind", k.cursor.Load(), k.behindSince.Load())
	}
}

// A token revoked (or expired) while its socket is open closes the socket
// at the next ping, even if the sign-out notification never arrived.
func TestRevokedTokenClosesItsSocket(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.PingInterval = 50 * time.Millisecond
	a := e.replica(t, cfg)
	u := e.user(t, identity.RoleRider)
	c := a.connect(t, u, "")
	c.ExpectQuiet()
	e.auth.mu.Lock()
	delete(e.auth.tokens, token(u)) // revoked without telling any replica
	e.auth.mu.Unlock()
	code, reason := c.ExpectClose(5 * time.Second)
	if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "revoked") {
		t.Fatalf("close = %d %q, want 1008 naming the revoked token", code, reason)
	}
}

// One account cannot exhaust a replica with sockets: past the cap the
// upgrade is refused with 429 and Retry-After; closing one makes room.
func TestSocketsPerUserAreCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.MaxSocketsPerUser = 2
	a := e.replica(t, cfg)
	u := e.user(t, identity.RoleRider)
	first := a.connect(t, u, "")
	a.connect(t, u, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := a.dial(ctx, "", http.Header{"Authorization": {"Bearer " + token(u)}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third socket: err %v, response %+v; want 429 with Retry-After", err, resp)
	}
	a.connect(t, e.user(t, identity.RoleRider), "") // other users are not affected
	first.Close()
	eventually(t, 5*time.Second, "room for another socket", func() bool {
		c, _, err := a.dial(ctx, "", http.Header{"Authorization": {"Bearer " + token(u)}})
		if err == nil {
			c.CloseNow()
		}
		return err == nil
	})
}

// A client that stops reading gets 1008 and a reason when it reads again,
// not a dropped connection (1006), even though the write it blocked has a
// deadline of its own: as by default, that deadline is no longer than the
// slow rule.
func TestStalledReaderGetsACloseFrame(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.SendBuffer = 8
	cfg.SlowTimeout = time.Second
	cfg.WriteTimeout = time.Second
	a := e.replica(t, cfg)
	u := e.user(t, identity.RoleRider)
	stalled := a.connect(t, u, "")

	big := map[string]string{"pad": strings.Repeat("x", 64<<10)}
	closedSlow := func() bool { return value(t, a.svc.m.closes.WithLabelValues("slow")) == 1 }
	for appended := 0; !closedSlow(); appended++ {
		if dropped := value(t, a.svc.m.closes.WithLabelValues("write_failed")); dropped != 0 {
			t.Fatal("the stalled reader was dropped without a close frame")
		}
		if appended == 2000 {
			t.Fatal("the stalled reader was never closed")
		}
		e.append(t, a.svc, u, "trip.updated", big)
	}
	if code, reason := stalled.ExpectClose(20 * time.Second); code != websocket.StatusPolicyViolation || !strings.Contains(reason, "since") {
		t.Fatalf("stalled reader closed with %d %q, want 1008 telling it to resume with since", code, reason)
	}
}
