// Package notifytest is the one test client of the event socket
// (/api/v1/ws), shared by the tests of notify and of the whole program: it
// dials, reads in the background once a test first reads (so a socket a
// test never reads stays a slow reader), and waits for the messages a test
// expects.
package notifytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Message is any message the server sends on the socket.
type Message struct {
	Type    string          `json:"type"`
	Seq     int64           `json:"seq"`
	Kind    string          `json:"kind"`
	At      time.Time       `json:"at"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	LastSeq *int64          `json:"last_seq"`
	// Recv is when the client read the message off the socket.
	Recv time.Time `json:"-"`
}

// Decode unmarshals a message's data into a T, failing tb when it cannot.
func Decode[T any](tb testing.TB, m Message) T {
	tb.Helper()
	var v T
	if err := json.Unmarshal(m.Data, &v); err != nil {
		tb.Fatalf("message %s %s data: %v: %s", m.Type, m.Kind, err, m.Data)
	}
	return v
}

// ErrTimeout is what Read returns when no message came in time; the socket
// stays open.
var ErrTimeout = errors.New("no message in time")

// Socket is a test's WebSocket. Its reader goroutine starts at the first
// read and ends when the socket closes; the socket is closed when the test
// ends.
type Socket struct {
	tb     testing.TB
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	msgs   chan Message
	// err is why reading ended; it is set before msgs is closed.
	err error
}

// Dial opens a socket at url (ws://host/api/v1/ws?query) with header,
// failing tb with the HTTP answer when it cannot.
func Dial(tb testing.TB, url string, header http.Header) *Socket {
	tb.Helper()
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		answer := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			answer = fmt.Sprintf(" (answer %d %s)", resp.StatusCode, b)
		}
		tb.Fatalf("dial %s: %v%s", url, err, answer)
	}
	conn.SetReadLimit(-1)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Socket{tb: tb, conn: conn, cancel: cancel, msgs: make(chan Message, 1024)}
	tb.Cleanup(s.Close)
	s.ctx = ctx
	return s
}

func (s *Socket) start() {
	s.once.Do(func() {
		go func() {
			defer close(s.msgs)
			for {
				_, b, err := s.conn.Read(s.ctx)
				if err != nil {
					s.err = err
					return
				}
				var m Message
				if err := json.Unmarshal(b, &m); err != nil {
					s.err = fmt.Errorf("decode %s: %w", b, err)
					return
				}
				m.Recv = time.Now()
				s.msgs <- m
			}
		}()
	})
}

// Messages returns the messages in the order they came; the channel is
// closed when the socket closes, and then Err says why.
func (s *Socket) Messages() <-chan Message {
	s.start()
	return s.msgs
}

// Err is why the socket stopped reading (a websocket.CloseError when the
// server closed it); call it only after Messages is closed.
func (s *Socket) Err() error { return s.err }

// Read returns the next message, ErrTimeout when none comes within
// timeout, or why the socket closed.
func (s *Socket) Read(timeout time.Duration) (Message, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m, ok := <-s.Messages():
		if !ok {
			return Message{}, s.err
		}
		return m, nil
	case <-t.C:
		return Message{}, ErrTimeout
	}
}

// Next returns the next message, failing the test after 10 seconds.
func (s *Socket) Next() Message {
	s.tb.Helper()
	m, err := s.Read(10 * time.Second)
	if err != nil {
		s.tb.Fatalf("read: %v", err)
	}
	return m
}

// NextOf waits for the next message of type typ and kind (any kind when
// kind is ""), skipping others, and fails the test after timeout.
func (s *Socket) NextOf(typ, kind string, timeout time.Duration) Message {
	s.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := s.Read(time.Until(deadline))
		if err != nil {
			s.tb.Fatalf("no %s %s message within %s: %v", typ, kind, timeout, err)
		}
		if m.Type == typ && (kind == "" || m.Kind == kind) {
			return m
		}
	}
}

// Poll returns the next message of kind within d, skipping others, or false.
func (s *Socket) Poll(kind string, d time.Duration) (Message, bool) {
	deadline := time.Now().Add(d)
	for {
		m, err := s.Read(time.Until(deadline))
		if err != nil {
			return Message{}, false
		}
		if m.Kind == kind {
			return m, true
		}
	}
}

// None fails the test when a message of kind arrives within d.
func (s *Socket) None(kind string, d time.Duration) {
	s.tb.Helper()
	if m, ok := s.Poll(kind, d); ok {
		s.tb.Fatalf("unexpected %s message: %s", kind, m.Data)
	}
}

// ExpectSeqs reads events and checks they are exactly seqs, in order.
func (s *Socket) ExpectSeqs(seqs ...int64) []Message {
	s.tb.Helper()
	var got []Message
	for _, want := range seqs {
		m := s.Next()
		if m.Type != "event" || m.Seq != want {
			s.tb.Fatalf("got %+v, want event %d", m, want)
		}
		got = append(got, m)
	}
	return got
}

// ExpectQuiet checks that nothing but the answer to a ping is waiting: a
// ping goes through the same writer after anything already queued.
func (s *Socket) ExpectQuiet() {
	s.tb.Helper()
	s.Send(map[string]string{"type": "ping"})
	if m := s.Next(); m.Type != "pong" {
		s.tb.Fatalf("got %+v, want nothing more (pong)", m)
	}
}

// ExpectClose reads until the socket closes and returns its close status
// and reason (-1 and the error when it ended without a close frame). It
// fails the test when the socket is still open after timeout.
func (s *Socket) ExpectClose(timeout time.Duration) (websocket.StatusCode, string) {
	s.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := s.Read(time.Until(deadline))
		switch {
		case err == nil:
			continue
		case errors.Is(err, ErrTimeout):
			s.tb.Fatalf("socket still open after %s", timeout)
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		return -1, err.Error()
	}
}

// Send writes v as a JSON message.
func (s *Socket) Send(v any) {
	s.tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.SendRaw(b)
}

// SendRaw writes b as a text message.
func (s *Socket) SendRaw(b []byte) {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		s.tb.Fatalf("write to socket: %v", err)
	}
}

// Conn is the underlying connection, for tests that write frames Send
// cannot (binary, oversized, malformed).
func (s *Socket) Conn() *websocket.Conn { return s.conn }

// Close closes the socket normally (1000) and stops its reader.
func (s *Socket) Close() {
	s.conn.Close(websocket.StatusNormalClosure, "")
	s.cancel()
}
