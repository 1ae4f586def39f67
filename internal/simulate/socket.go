package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// event is one message of a user's event stream.
type event struct {
	Seq  int64           `json:"seq"`
	Kind string          `json:"kind"`
	At   time.Time       `json:"at"`
	Data json.RawMessage `json:"data"`
}

// wireMessage is anything the server sends on the socket.
type wireMessage struct {
	Type    string          `json:"type"`
	Seq     int64           `json:"seq"`
	Kind    string          `json:"kind"`
	At      time.Time       `json:"at"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	LastSeq *int64          `json:"last_seq"`
}

// socket is one user's WebSocket, kept open: when it drops (a replica
// killed, a load balancer restarted) it is dialled again with since set to
// the last event seen, so no event is missed or seen twice. Its owner
// calls run; events are handed to onEvent on the reading goroutine, in
// order, each once.
type socket struct {
	url     string
	token   string
	http    *http.Client
	stats   *stats
	onEvent func(ev event, received time.Time)

	mu      sync.Mutex
	conn    *websocket.Conn
	lastSeq int64
	// unacked counts fixes sent since the last ping; pending holds, per
	// ping awaiting its pong, the fixes sent before it.
	unacked int64
	pending []int64
	// connected is closed once the first dial succeeded.
	connected chan struct{}
	once      sync.Once
}

func newSocket(base, token string, hc *http.Client, st *stats, onEvent func(event, time.Time)) *socket {
	return &socket{url: wsURL(base), token: token, http: hc, stats: st, onEvent: onEvent, connected: make(chan struct{})}
}

// run keeps the socket open until ctx ends.
func (s *socket) run(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		s.mu.Lock()
		since := s.lastSeq
		s.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, resp, err := websocket.Dial(dctx, s.url+"?since="+strconv.FormatInt(since, 10), &websocket.DialOptions{
			HTTPClient: s.http, HTTPHeader: http.Header{"Authorization": {"Bearer " + s.token}},
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if resp != nil {
				s.stats.errorf("ws_dial_%d", resp.StatusCode)
			} else {
				s.stats.errorf("ws_dial")
			}
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		conn.SetReadLimit(4 << 20)
		s.mu.Lock()
		s.conn, s.unacked, s.pending = conn, 0, nil
		s.mu.Unlock()
		s.once.Do(func() { close(s.connected) })
		err = s.read(ctx, conn, time.Now())
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
		_ = conn.CloseNow()
		if ctx.Err() != nil {
			return nil
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			s.stats.errorf("ws_closed_%d", int(ce.Code))
		} else {
			s.stats.errorf("ws_dropped")
		}
		sleep(ctx, backoff)
	}
	return nil
}

// read takes messages until the connection fails.
func (s *socket) read(ctx context.Context, conn *websocket.Conn, connectedAt time.Time) error {
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		var m wireMessage
		if err := json.Unmarshal(b, &m); err != nil {
			s.stats.errorf("ws_bad_message")
			continue
		}
		switch m.Type {
		case "pong":
			s.mu.Lock()
			if len(s.pending) > 0 {
				s.stats.fixesAcked.Add(s.pending[0])
				s.pending = s.pending[1:]
			}
			s.mu.Unlock()
		case "error":
			switch {
			case m.Code == "since_too_old" && m.LastSeq != nil:
				s.stats.errorf("ws_since_too_old")
				s.mu.Lock()
				s.lastSeq = *m.LastSeq
				s.mu.Unlock()
			default:
				// Errors answer fixes (the only messages but pings a
				// client sends): the fix was refused.
				s.stats.fixRejected(m.Code)
				s.mu.Lock()
				if len(s.pending) > 0 {
					s.pending[0]--
				} else {
					s.unacked--
				}
				s.mu.Unlock()
			}
		case "event":
			if m.Seq == 0 { // disposable (driver.location): not numbered
				continue
			}
			s.mu.Lock()
			last := s.lastSeq
			s.lastSeq = max(last, m.Seq)
			s.mu.Unlock()
			if m.Seq <= last { // told twice: the owner counts it, and ignores it otherwise
				s.stats.errorf("event_duplicate")
				if s.onEvent != nil {
					s.onEvent(event{Seq: m.Seq, Kind: m.Kind, At: m.At, Data: m.Data}, now)
				}
				continue
			}
			if m.Seq > last+1 { // events skipped: the stream's contract broken
				s.stats.errorf("event_gap")
			}
			s.stats.eventsTaken.Add(1)
			if m.At.After(connectedAt) { // live, not replayed after a reconnect
				s.stats.deliveryLatency(now.Sub(m.At))
			}
			if s.onEvent != nil {
				s.onEvent(event{Seq: m.Seq, Kind: m.Kind, At: m.At, Data: m.Data}, now)
			}
		}
	}
}

// write sends one message if the socket is open; it reports whether it
// went out. A failed write drops the connection, and run dials again.
func (s *socket) write(msg []byte) bool {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
		s.stats.errorf("ws_write")
		_ = conn.CloseNow()
		return false
	}
	return true
}

// sendFix sends one location message and counts it.
func (s *socket) sendFix(msg []byte) bool {
	if !s.write(msg) {
		s.stats.errorf("fix_not_sent_offline")
		return false
	}
	s.stats.fixesSent.Add(1)
	s.mu.Lock()
	s.unacked++
	s.mu.Unlock()
	return true
}

// ping asks the server to answer pong once it has handled every message
// sent before; the pong acknowledges the fixes sent before the ping.
func (s *socket) ping() {
	s.mu.Lock()
	n := s.unacked
	s.unacked = 0
	s.pending = append(s.pending, n)
	s.mu.Unlock()
	if !s.write([]byte(`{"type":"ping"}`)) {
		s.mu.Lock()
		if len(s.pending) > 0 {
			s.pending = s.pending[:len(s.pending)-1]
		}
		s.mu.Unlock()
	}
}

// last is the newest event number seen.
func (s *socket) last() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
