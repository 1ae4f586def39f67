package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

var emailSeq atomic.Int64

// client is one user of a running server, speaking its REST API.
type client struct {
	tb    testing.TB
	base  string
	token string
	id    string
	role  string
}

// signUp creates a rider or driver with a unique email.
func signUp(tb testing.TB, s *server, role, name string) *client {
	tb.Helper()
	c := &client{tb: tb, base: s.URL, role: role}
	email := fmt.Sprintf("%s-%d-%d@example.com", strings.ToLower(name), time.Now().UnixNano(), emailSeq.Add(1))
	var sess struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if code := c.do("POST", "/api/v1/auth/signup", map[string]any{"email": email, "password": "long enough 1", "name": name, "role": role}, &sess); code != 201 {
		tb.Fatalf("sign up %s: %d", name, code)
	}
	c.token, c.id = sess.Token, sess.User.ID
	return c
}

// do sends a JSON request (body may be a string of raw JSON) and decodes
// the answer into out (a *map[string]any or a struct), returning the status.
func (c *client) do(method, path string, body, out any, headers ...string) int {
	c.tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			c.tb.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.tb.Fatalf("%s %s: %d, answer not JSON into %T: %v: %q", method, path, resp.StatusCode, out, err, raw)
		}
	}
	return resp.StatusCode
}

// must sends a request and fails the test unless the status is want.
func (c *client) must(want int, method, path string, body any) map[string]any {
	c.tb.Helper()
	var out map[string]any
	if code := c.do(method, path, body, &out); code != want {
		c.tb.Fatalf("%s %s = %d %v, want %d", method, path, code, out, want)
	}
	return out
}

// event is a message from the socket.
type event struct {
	Type    string          `json:"type"`
	Seq     int64           `json:"seq"`
	Kind    string          `json:"kind"`
	At      time.Time       `json:"at"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	// Recv is when the client read the message off the socket.
	Recv time.Time `json:"-"`
}

// socket is a client's WebSocket, read in the background.
type socket struct {
	tb     testing.TB
	conn   *websocket.Conn
	msgs   chan event
	cancel context.CancelFunc
	// closeErr is why reading ended; set before msgs is closed.
	closeErr error
}

// connect opens the client's WebSocket with the given query (e.g. "since=0").
func (c *client) connect(query string) *socket {
	c.tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := strings.Replace(c.base, "http", "ws", 1) + "/api/v1/ws"
	if query != "" {
		u += "?" + query
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + c.token}}})
	if err != nil {
		cancel()
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		c.tb.Fatalf("dial websocket: %v (status %d)", err, status)
	}
	conn.SetReadLimit(1 << 20)
	s := &socket{tb: c.tb, conn: conn, msgs: make(chan event, 1024), cancel: cancel}
	go func() {
		defer close(s.msgs)
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				s.closeErr = err
				return
			}
			var e event
			if json.Unmarshal(b, &e) == nil {
				e.Recv = time.Now()
				s.msgs <- e
			}
		}
	}()
	c.tb.Cleanup(s.close)
	return s
}

func (s *socket) close() {
	s.conn.Close(websocket.StatusNormalClosure, "")
	s.cancel()
}

func (s *socket) send(v any) {
	s.tb.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		s.tb.Fatalf("write to socket: %v", err)
	}
}

// next waits for the next message of the given type and kind (kind "" is
// any), skipping others, and fails the test after timeout.
func (s *socket) next(typ, kind string, timeout time.Duration) event {
	s.tb.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-s.msgs:
			if !ok {
				s.tb.Fatalf("socket closed while waiting for %s %s", typ, kind)
			}
			if e.Type == typ && (kind == "" || e.Kind == kind) {
				return e
			}
		case <-deadline:
			s.tb.Fatalf("no %s %s message within %s", typ, kind, timeout)
		}
	}
}

// none fails the test if a message of the kind arrives within d.
func (s *socket) none(kind string, d time.Duration) {
	s.tb.Helper()
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-s.msgs:
			if !ok {
				return
			}
			if e.Kind == kind {
				s.tb.Fatalf("unexpected %s event: %s", kind, e.Data)
			}
		case <-deadline:
			return
		}
	}
}

// decode unmarshals an event's data.
func decode[T any](tb testing.TB, e event) T {
	tb.Helper()
	var v T
	if err := json.Unmarshal(e.Data, &v); err != nil {
		tb.Fatalf("event %s data: %v: %s", e.Kind, err, e.Data)
	}
	return v
}

// poll returns the next message of kind within d, skipping others, or false.
func (s *socket) poll(kind string, d time.Duration) (event, bool) {
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-s.msgs:
			if !ok {
				return event{}, false
			}
			if e.Kind == kind {
				return e, true
			}
		case <-deadline:
			return event{}, false
		}
	}
}
