package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/flatjson"
	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/notify/internal/notifydb"
)

// closeReason is why the server closes a socket: the close code and reason
// the client sees (code 0: drop the connection without a close frame), the
// metric label, and whether the replies already queued (the errors that
// explain the close) are written first.
type closeReason struct {
	code   websocket.StatusCode
	reason string
	label  string
	flush  bool
}

var (
	closeSlow        = closeReason{websocket.StatusPolicyViolation, "too slow to read its events; reconnect with since", "slow", false}
	closeMisbehaving = closeReason{websocket.StatusPolicyViolation, "too many bad messages", "misbehaving", true}
	closeSignedOut   = closeReason{websocket.StatusNormalClosure, "signed out", "signed_out", false}
	closeGoingAway   = closeReason{websocket.StatusGoingAway, "going away", "going_away", false}
	closeInternal    = closeReason{websocket.StatusInternalError, "internal error; reconnect with since", "internal", false}
	closeNoPong      = closeReason{0, "", "no_pong", false}
	closeRevoked     = closeReason{websocket.StatusPolicyViolation, "the token was revoked or has expired; sign in again", "revoked", false}
	closeWriteFailed = closeReason{0, "", "write_failed", false}
	closeByClient    = closeReason{websocket.StatusNormalClosure, "", "", false}
	// RFC 6455: data that does not fit the message type closes with 1007;
	// a type the endpoint does not accept closes with 1003.
	closeBadUTF8 = closeReason{websocket.StatusInvalidFramePayloadData, "a text message must be valid UTF-8", "invalid_utf8", false}
	closeBinary  = closeReason{websocket.StatusUnsupportedData, "binary messages are not accepted; send JSON as text", "binary", false}
)

// outMsg is a message waiting to be written to a socket.
type outMsg struct {
	data []byte
	seq  int64     // 0 for a disposable message
	at   time.Time // when a stored event was appended
	push bool      // a stored event that is pushed unless a socket takes it
}

// socket is one client connection. Its handler goroutine reads; one writer
// goroutine at a time owns every write and the close, and runs only while
// there is something to write (an idle socket holds none); a timer pings
// it to check liveness.
type socket struct {
	p     identity.Principal
	token string // re-checked while the socket lives, so a revoked token cannot keep it
	user  uuid.UUID
	conn  *websocket.Conn // set before the goroutines start

	// cursor is the last stored event queued or written. Before the socket
	// is ready only its writer changes it (while replaying); after, only the
	// fetcher loading for its user.
	cursor atomic.Int64
	// ready (guarded by hub.mu): the socket takes live events after cursor.
	ready bool
	// behindSince is when (unix ns) the socket last had no room for a
	// stored event, 0 when it has taken every event loaded.
	behindSince atomic.Int64
	// kickPending: the writer has asked for a load since the last one.
	kickPending atomic.Bool
	// writingSince is when (unix ns) the write in progress began, 0 when
	// the writer is not writing.
	writingSince atomic.Int64

	closeOnce sync.Once
	closing   chan struct{}
	why       closeReason // set before closing is closed
	done      chan struct{}
	closes    *prometheus.CounterVec

	// The writer: a producer that queues starts one when none runs; it
	// exits when the queues are empty, and for good once it has closed the
	// connection (then finished is closed). wmu guards the queues and the
	// writer's state.
	wmu sync.Mutex
	// send holds events, stored and disposable, in the order to write
	// them, at most sendCap; ctrl holds replies to the client (pong,
	// error), written first, at most ctrlCap. Each is nil while empty, so
	// an idle socket holds no buffer.
	send        []outMsg
	sendCap     int
	ctrl        [][]byte
	runWriter   func() // set by serveSocket; nil: nothing writes yet
	writerOn    bool   // a writer goroutine runs
	writerEnded bool   // the connection is closed: no writer starts again
	writerBegun bool   // the first run (handshake replies, replay) happened; writers only
	writers     sync.WaitGroup
	finished    chan struct{}

	// Reader-only state.
	limiter *rate.Limiter
	strikes []time.Time
}

func newSocket(p identity.Principal, cfg Config, closes *prometheus.CounterVec) *socket {
	return &socket{
		p: p, user: p.UserID, closes: closes,
		sendCap:  cfg.SendBuffer,
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		limiter:  rate.NewLimiter(rate.Limit(cfg.MessageRate), cfg.MessageBurst),
	}
}

// close asks the writer to close the socket; the first reason wins, and
// is counted.
func (k *socket) close(why closeReason) {
	k.closeOnce.Do(func() {
		k.why = why
		close(k.closing)
		if why.label != "" {
			k.closes.WithLabelValues(why.label).Inc()
		}
	})
	k.wakeWriter()
}

// ctrlCap bounds the replies waiting for a socket's writer.
const ctrlCap = 16

// wakeWriter starts a writer for what was just queued, unless one runs.
func (k *socket) wakeWriter() {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	k.wakeWriterLocked()
}

func (k *socket) wakeWriterLocked() {
	if k.writerOn || k.writerEnded || k.runWriter == nil {
		return
	}
	k.writerOn = true
	k.writers.Add(1)
	go func() {
		defer k.writers.Done()
		k.runWriter()
	}()
}

// next takes the next message to write, a reply before an event, and
// how many events stay queued. When nothing is queued it returns ok false
// and the writer is off: a producer that queues later starts another.
func (k *socket) next() (m outMsg, reply bool, left int, ok bool) {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	if b, ok := k.takeReplyLocked(); ok {
		return outMsg{data: b}, true, len(k.send), true
	}
	if len(k.send) == 0 {
		k.writerOn = false
		return outMsg{}, false, 0, false
	}
	m = k.send[0]
	k.send[0] = outMsg{}
	if k.send = k.send[1:]; len(k.send) == 0 {
		k.send = nil
	}
	return m, false, len(k.send), true
}

func (k *socket) takeReplyLocked() ([]byte, bool) {
	if len(k.ctrl) == 0 {
		return nil, false
	}
	b := k.ctrl[0]
	k.ctrl[0] = nil
	if k.ctrl = k.ctrl[1:]; len(k.ctrl) == 0 {
		k.ctrl = nil
	}
	return b, true
}

// sendFull reports whether k has no room for another event.
func (k *socket) sendFull() bool {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	return len(k.send) >= k.sendCap
}

// queueLocked queues m; k.wmu is held and there is room.
func (k *socket) queueLocked(m outMsg) {
	if k.send == nil {
		k.send = make([]outMsg, 0, min(8, k.sendCap))
	}
	k.send = append(k.send, m)
}

func (k *socket) isClosing() bool {
	select {
	case <-k.closing:
		return true
	default:
		return false
	}
}

func (k *socket) markBehind(now time.Time) {
	k.behindSince.CompareAndSwap(0, now.UnixNano())
}

// offerStored queues the loaded events (those after from, in order) that k
// has not taken yet. A socket whose cursor is before from would see a gap,
// so it takes nothing now and is marked behind.
func (k *socket) offerStored(msgs []outMsg, from int64, more bool, now time.Time) {
	if k.isClosing() {
		return
	}
	cur := k.cursor.Load()
	if cur < from {
		k.markBehind(now)
		return
	}
	k.wmu.Lock()
	defer k.wmu.Unlock()
	defer k.wakeWriterLocked()
	for _, m := range msgs {
		if m.seq <= cur {
			continue
		}
		if len(k.send) >= k.sendCap {
			k.markBehind(now)
			return
		}
		k.queueLocked(m)
		cur = m.seq
		k.cursor.Store(cur)
	}
	if !more {
		k.behindSince.Store(0)
	}
}

// offerDisposable queues msg unless the buffer is more than half full, so
// that disposable messages never crowd out stored events.
func (k *socket) offerDisposable(msg []byte) bool {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	if k.isClosing() || len(k.send) > k.sendCap/2 {
		return false
	}
	k.queueLocked(outMsg{data: msg})
	k.wakeWriterLocked()
	return true
}

// reply queues a message to the client; a client that does not read its
// replies loses them.
func (k *socket) reply(b []byte) {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	if len(k.ctrl) < ctrlCap {
		k.ctrl = append(k.ctrl, b)
		k.wakeWriterLocked()
	}
}

// serveSocket runs an accepted socket until it closes. replay says whether
// the writer first replays stored events after the cursor.
func (s *Service) serveSocket(ctx context.Context, k *socket, replay bool) {
	ctx, cancel := context.WithCancel(ctx)
	k.wmu.Lock()
	k.runWriter = func() { s.writeLoop(ctx, k, replay) }
	k.wmu.Unlock()
	k.wakeWriter() // the first run writes the handshake's replies and replays
	stopPings := s.startPings(ctx, k)
	s.readLoop(ctx, k)
	k.close(closeByClient)
	cancel()
	stopPings()
	<-k.finished
	k.writers.Wait()
}

// readLoop reads client messages until the connection ends. After the
// socket is told to close it keeps reading (and ignoring) messages, so the
// writer can finish the close handshake.
//
// Each message is read into a buffer borrowed from a pool for the time it
// is handled (handlers must not keep the message), so an idle socket holds
// no read buffer and a busy one allocates none.
func (s *Service) readLoop(ctx context.Context, k *socket) {
	// ctx is never cancelled while the loop runs (serveSocket cancels it
	// after); the connection's close ends a read. A context without Done
	// spares each read a context.AfterFunc registration.
	rctx := context.WithoutCancel(ctx)
	for {
		typ, r, err := k.conn.Reader(rctx)
		var buf *bytes.Buffer
		if err == nil {
			buf = readBuffers.Get().(*bytes.Buffer)
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if buf != nil {
				putReadBuffer(buf)
			}
			if st := websocket.CloseStatus(err); st == websocket.StatusMessageTooBig || errors.Is(err, websocket.ErrMessageTooBig) {
				s.m.closes.WithLabelValues("too_big").Inc()
			}
			return
		}
		data := buf.Bytes()
		switch {
		case k.isClosing():
		case typ != websocket.MessageText:
			k.close(closeBinary)
		case !utf8.Valid(data):
			k.close(closeBadUTF8)
		default:
			s.handleMessage(ctx, k, data)
		}
		putReadBuffer(buf)
	}
}

// readBuffers hold client messages while they are handled.
var readBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// keptReadBuffer is the largest buffer returned to the pool: a rare big
// message does not pin its buffer for ever.
const keptReadBuffer = 4 << 10

func putReadBuffer(b *bytes.Buffer) {
	if b.Cap() > keptReadBuffer {
		return
	}
	b.Reset()
	readBuffers.Put(b)
}

// envelope is what every client message has: its type.
type envelope struct {
	Type string `json:"type"`
}

// decodeEnvelope reads the type of a client message, or says why it has none.
func decodeEnvelope(data []byte) (envelope, error) {
	var env envelope
	if typ, ok := messageType(data); ok {
		env.Type = typ
	} else if err := json.Unmarshal(data, &env); err != nil {
		return env, errors.New("the message is not a JSON object: " + err.Error())
	}
	if env.Type == "" {
		return env, errors.New(`the message has no "type"`)
	}
	return env, nil
}

// handleMessage answers one client message. Bad ones get an error message
// and count as strikes; too many strikes close the socket with 1008.
func (s *Service) handleMessage(ctx context.Context, k *socket, data []byte) {
	now := s.now()
	if !k.limiter.AllowN(now, 1) {
		k.reply(encodeError("rate_limited", fmt.Sprintf("more than %g messages a second; slow down", s.cfg.MessageRate)))
		s.strike(k, now)
		return
	}
	env, err := decodeEnvelope(data)
	if err != nil {
		k.reply(encodeError("malformed", err.Error()))
		s.strike(k, now)
		return
	}
	if env.Type == "ping" {
		k.reply(pongMessage)
		return
	}
	h, known := s.handler(env.Type)
	if h == nil {
		k.reply(encodeError("unknown_type", fmt.Sprintf("unknown message type %q; known types: %s", env.Type, strings.Join(known, ", "))))
		s.strike(k, now)
		return
	}
	err = callHandler(ctx, h, k.p, data)
	if err == nil {
		return
	}
	kind, msg, ok := fault.KindOf(err)
	if !ok {
		httpx.Logger(ctx).Error("socket message handler failed", "type", env.Type, "user_id", k.user, "err", err)
		k.reply(encodeError("internal", "internal error"))
		return
	}
	code := string(kind)
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) && coded.ErrorCode() != "" {
		code = coded.ErrorCode() // a handler's own, finer code (e.g. implausible_speed)
	}
	k.reply(encodeError(code, msg))
	switch kind {
	case fault.Malformed, fault.Forbidden, fault.RateLimited, fault.Unauthorized, fault.TooLarge:
		s.strike(k, now)
	}
}

// messageType reads the "type" of a flat message (every socket message a
// client sends today) without encoding/json; ok is false for anything
// else (nested values, escapes, a "Type" key that encoding/json would
// also take, invalid JSON), which handleMessage then decodes with
// encoding/json, so clients see the same errors as before.
func messageType(data []byte) (typ string, ok bool) {
	var raw []byte
	ok = flatjson.Scan(data, func(key []byte, kind flatjson.Kind, val []byte) bool {
		switch {
		case string(key) == "type":
			if kind != flatjson.String {
				return false // encoding/json's error, or its null rule
			}
			raw = val // the last one wins, as in encoding/json
		case len(key) == 4 && strings.EqualFold(string(key), "type"):
			return false
		}
		return true
	})
	if !ok {
		return "", false
	}
	return string(raw), true
}

// callHandler runs h, turning a panic into an error: one bad message must
// not take the socket's goroutines (or the process) down with it.
func callHandler(ctx context.Context, h HandlerFunc, p identity.Principal, raw json.RawMessage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("socket message handler panicked: %v", r)
		}
	}()
	return h(ctx, p, raw)
}

// strike records a bad message and closes k after too many in the window.
func (s *Service) strike(k *socket, now time.Time) {
	cutoff := now.Add(-s.cfg.BadMessageWindow)
	kept := k.strikes[:0]
	for _, t := range k.strikes {
		if t.After(cutoff) {
			kept = append(kept, t)
		}
	}
	k.strikes = append(kept, now)
	if len(k.strikes) > s.cfg.MaxBadMessages {
		k.close(closeMisbehaving)
	}
}

// writeLoop writes everything queued for the client, in order, and
// returns when nothing more is; it closes the connection when told to (or
// when a write fails). One runs at a time (see wakeWriter).
func (s *Service) writeLoop(ctx context.Context, k *socket, replay bool) {
	if !k.writerBegun {
		k.writerBegun = true
		// What the handshake queued (since_too_old) goes before any event.
		if !s.flushReplies(ctx, k) {
			s.endWriter(k)
			return
		}
		if replay {
			if !s.replay(ctx, k) {
				s.endWriter(k)
				return
			}
			s.hub.setReady(k)
		}
	}
	for {
		if k.isClosing() {
			s.endWriter(k)
			return
		}
		m, reply, left, ok := k.next()
		if !ok {
			return
		}
		if !s.write(ctx, k, m.data) {
			s.endWriter(k)
			return
		}
		if reply {
			continue
		}
		s.written(k, m)
		// A socket that fell behind asks for the rest once it has room.
		if k.behindSince.Load() != 0 && left <= k.sendCap/2 && k.kickPending.CompareAndSwap(false, true) {
			s.hub.markDirty(k.user)
		}
	}
}

// endWriter closes the connection (see finishClose) and ends writing for
// good.
func (s *Service) endWriter(k *socket) {
	s.finishClose(k)
	k.wmu.Lock()
	k.writerEnded, k.writerOn = true, false
	k.wmu.Unlock()
	close(k.finished)
}

// flushReplies writes the replies already queued.
func (s *Service) flushReplies(ctx context.Context, k *socket) bool {
	for {
		k.wmu.Lock()
		b, ok := k.takeReplyLocked()
		k.wmu.Unlock()
		if !ok {
			return true
		}
		if !s.write(ctx, k, b) {
			return false
		}
	}
}

// replayPage is how many stored events a replay reads at a time.
const replayPage = 500

// replay writes every stored event after k's cursor, straight from the
// table (not through the buffer, so a long replay is not "slow").
func (s *Service) replay(ctx context.Context, k *socket) bool {
	from := k.cursor.Load()
	n := 0
	for {
		rows, err := s.q.ListEvents(ctx, notifydb.ListEventsParams{UserID: k.user, Seq: from, Limit: replayPage})
		if err != nil {
			if ctx.Err() == nil {
				httpx.Logger(ctx).Error("replay events", "user_id", k.user, "err", err)
				k.close(closeInternal)
			}
			return false
		}
		for _, r := range rows {
			if k.isClosing() || !s.flushReplies(ctx, k) {
				return false
			}
			if !s.write(ctx, k, encodeEvent(r)) {
				return false
			}
			from = r.Seq
			k.cursor.Store(from)
			n++
			s.m.delivered.WithLabelValues("stored").Inc()
			if r.Push {
				s.ack(k.user, r.Seq)
			}
		}
		if len(rows) < replayPage {
			s.m.replay.Observe(float64(n))
			return true
		}
	}
}

// write writes one message. A client that stops reading blocks it once the
// TCP buffers are full. Such a client is slow, and gets 1008 with a close
// frame once it reads again (the slow rule, from the fetcher or here, after
// SlowTimeout); only a write still blocked WriteTimeout after that drops
// the connection without one, since a close frame cannot reach a client
// that reads nothing. (A write deadline shorter than the slow rule would
// drop every stalled reader with 1006.)
func (s *Service) write(ctx context.Context, k *socket, b []byte) bool {
	start := s.now()
	k.writingSince.Store(start.UnixNano())
	defer k.writingSince.Store(0)
	wctx, cancel := context.WithTimeout(ctx, s.cfg.SlowTimeout+s.cfg.WriteTimeout)
	defer cancel()
	if err := k.conn.Write(wctx, websocket.MessageText, b); err != nil {
		k.close(closeWriteFailed)
		return false
	}
	if s.now().Sub(start) > s.cfg.SlowTimeout {
		k.close(closeSlow)
	}
	return true
}

// stalled reports whether k has output it cannot get out: a write in
// progress or events it had no room for.
func (k *socket) stalled() bool {
	return k.writingSince.Load() != 0 || k.behindSince.Load() != 0
}

// written records a message that reached the socket.
func (s *Service) written(k *socket, m outMsg) {
	if m.seq == 0 {
		s.m.delivered.WithLabelValues("disposable").Inc()
		return
	}
	s.m.delivered.WithLabelValues("stored").Inc()
	s.m.latency.Observe(s.now().Sub(m.at).Seconds())
	if m.push {
		s.ack(k.user, m.seq)
	}
}

// finishClose closes the connection the way k.why says.
func (s *Service) finishClose(k *socket) {
	<-k.closing
	if k.why.flush {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
		s.flushReplies(ctx, k)
		cancel()
	}
	if k.why.code == 0 {
		_ = k.conn.CloseNow()
		return
	}
	_ = k.conn.Close(k.why.code, k.why.reason)
}

// startPings pings the client every PingInterval and drops a connection
// that does not answer within PongTimeout. The pings run from a timer, not
// a goroutine of their own, so an idle socket costs one goroutine stack
// fewer; stop ends them and waits for a ping in flight.
func (s *Service) startPings(ctx context.Context, k *socket) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		running sync.WaitGroup
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(s.cfg.PingInterval, func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		running.Add(1)
		mu.Unlock()
		defer running.Done()
		if !s.ping(ctx, k) {
			return
		}
		mu.Lock()
		if !stopped {
			t.Reset(s.cfg.PingInterval)
		}
		mu.Unlock()
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
		running.Wait()
	}
}

// tokenBatch bounds the tokens one re-check query carries.
const tokenBatch = 10000

// tokenLoop re-checks the tokens of all of this replica's sockets every
// PingInterval, in one query (per 10,000 sockets), and closes the sockets
// whose token no longer works. Sign-out closes sockets through a
// notification; should one be lost (a listener reconnecting), or a token
// simply expire, this closes the socket within a ping interval.
func (s *Service) tokenLoop(ctx context.Context) error {
	return every(ctx, s.cfg.PingInterval, s.recheckTokens)
}

func (s *Service) recheckTokens(ctx context.Context) {
	byToken := map[string][]*socket{}
	for _, k := range s.hub.sockets() {
		byToken[k.token] = append(byToken[k.token], k)
	}
	tokens := slices.Collect(maps.Keys(byToken))
	for chunk := range slices.Chunk(tokens, tokenBatch) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		invalid, err := s.auth.Invalid(cctx, chunk)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("re-check socket tokens", "tokens", len(chunk), "err", err)
			}
			return
		}
		for _, tok := range invalid {
			for _, k := range byToken[tok] {
				k.close(closeRevoked)
			}
		}
	}
}

// ping checks once that the client answers (tokenLoop re-checks the
// tokens); it returns false once the socket is closing.
func (s *Service) ping(ctx context.Context, k *socket) bool {
	if ctx.Err() != nil || k.isClosing() {
		return false
	}
	if k.writingSince.Load() != 0 {
		return true // the write's own deadline checks this client
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PongTimeout)
	err := k.conn.Ping(pctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		if k.stalled() {
			// A client that stopped reading answers no ping either: it
			// is slow, and gets 1008 if it reads again.
			k.close(closeSlow)
			return false
		}
		k.close(closeNoPong)
		_ = k.conn.CloseNow()
		return false
	}
	return true
}
