package simulate

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A socket that drops resumes with since set to the last event it saw,
// hands each event to its owner once in order, and counts an event the
// server sends again as a duplicate (still shown to the owner, who counts
// receipts). The server here is a small fake of notify's socket: the first
// connection sends events 1 and 2 and drops; the second, asked for
// since=2, sends 2 again, then 3, and answers a ping with a pong.
func TestSocketResumesWithSince(t *testing.T) {
	var mu sync.Mutex
	var sinces []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		sinces = append(sinces, r.URL.Query().Get("since"))
		n := len(sinces)
		mu.Unlock()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		send := func(seq int) {
			msg := fmt.Sprintf(`{"type":"event","seq":%d,"kind":"trip.updated","at":"%s","data":{}}`, seq, time.Now().UTC().Format(time.RFC3339Nano))
			_ = c.Write(ctx, websocket.MessageText, []byte(msg))
		}
		switch n {
		case 1:
			send(1)
			send(2)
			_ = c.Close(websocket.StatusGoingAway, "replica going away")
		default:
			send(2)
			send(3)
			for { // answer pings
				_, b, err := c.Read(ctx)
				if err != nil {
					return
				}
				if string(b) == `{"type":"ping"}` {
					_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
				}
			}
		}
	}))
	defer srv.Close()

	st := newStats()
	got := make(chan int64, 10)
	s := newSocket(srv.URL, "tok", srv.Client(), st, func(ev event, _ time.Time) { got <- ev.Seq })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	var seqs []int64
	for len(seqs) < 4 {
		select {
		case seq := <-got:
			seqs = append(seqs, seq)
		case <-time.After(10 * time.Second):
			t.Fatalf("events so far %v, want 1 2 2 3", seqs)
		}
	}
	if fmt.Sprint(seqs) != "[1 2 2 3]" {
		t.Errorf("events handed over %v, want [1 2 2 3] (the second 2 as a duplicate)", seqs)
	}
	mu.Lock()
	if fmt.Sprint(sinces) != "[0 2]" {
		t.Errorf("dialled with since %v, want [0 2]", sinces)
	}
	mu.Unlock()
	if s.last() != 3 {
		t.Errorf("last seq %d, want 3", s.last())
	}
	// A fix, then a ping: the pong acknowledges the fix.
	if !s.sendFix([]byte(`{"type":"location","lat":12.9,"lng":77.6}`)) {
		t.Fatal("the fix was not sent on the open socket")
	}
	s.ping()
	deadline := time.Now().Add(10 * time.Second)
	for st.fixesAcked.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st.fixesAcked.Load() != 1 {
		t.Errorf("acknowledged %d fixes, want 1", st.fixesAcked.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.errors["event_duplicate"] != 1 || st.errors["ws_closed_1001"] != 1 {
		t.Errorf("errors %v, want one event_duplicate and one ws_closed_1001", st.errors)
	}
}
