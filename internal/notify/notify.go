package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/notify/internal/notifydb"
)

// The Postgres channels every replica listens on.
const (
	// eventsChannel carries "<user id>:<seq>" for each stored event, sent on commit.
	eventsChannel = "lastmile_events"
	// liveChannel carries disposable messages (see Publish).
	liveChannel = "lastmile_live"
	// controlChannel carries "disconnect <user id>" (see DisconnectUser).
	controlChannel = "lastmile_control"
)

// ListenerName is the application_name of each replica's listening
// connection, so operators (and tests) can find it in pg_stat_activity.
const ListenerName = "lastmile-notify-listener"

// MaxClientMessage is the largest message a client may send over the
// socket; a larger one closes the socket with 1009.
const MaxClientMessage = 64 << 10

// maxEventData caps one event's JSON data; events are small notes, not files.
const maxEventData = 256 << 10

// Errors returned by the Service.
var (
	// ErrSinceTooOld means events after the given sequence number are no
	// longer kept (or the number was never given out): reload state over REST.
	ErrSinceTooOld = fault.New(fault.Conflict, "events after this sequence number are no longer kept, or it was never given out; "+
		"reload your state and continue from last_seq (GET /api/v1/events?limit=1 tells it)")
	errClosing = fault.New(fault.Unavailable, "the server is shutting down; reconnect")
	// errTooManySockets keeps one account from exhausting a replica's memory.
	errTooManySockets = fault.New(fault.RateLimited, "too many open sockets for this account; close one first")
)

// DefaultPushKinds are the event kinds also sent as Web Push to a user
// whose sockets do not take them within Config.PushDelay.
var DefaultPushKinds = []string{"ride.matched", "driver.arrived", "ride.cancelled", "ride.expired"}

// Config tunes event streams and sockets. Zero values take the defaults.
type Config struct {
	// Retention is how long events are kept (default 7 days).
	Retention time.Duration
	// CleanupInterval is how often old events are deleted (default 10 minutes).
	CleanupInterval time.Duration
	// PingInterval is how often the server pings each socket (default 30 s);
	// a socket that does not answer within PongTimeout (default 15 s) is
	// closed. The tokens of all sockets are re-checked as often.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// SendBuffer is how many messages may wait to be written to one socket
	// (default 64, 4 KiB per socket). Disposable messages are dropped once it
	// is half full.
	SendBuffer int
	// SlowTimeout: a socket whose buffer stays too full to take its events
	// for this long is closed with 1008 (default 10 s). The client resumes
	// with since.
	SlowTimeout time.Duration
	// WriteTimeout: a write still blocked this long after the slow rule
	// closed the socket drops the connection (default 10 s).
	WriteTimeout time.Duration
	// AllowedOrigins are the browser origins, besides the server's own, that
	// may open a socket: host patterns such as "app.example.com" or
	// "*.example.com", or "https://app.example.com" to match the scheme too
	// (path.Match syntax, case-insensitive).
	AllowedOrigins []string
	// CatchUpInterval is how often each replica compares the last event of
	// every user it holds a socket for with what it delivered, so that a
	// lost notification delays an event by at most this long (default 5 s).
	CatchUpInterval time.Duration
	// Fetchers is how many users' new events are loaded at once (default 4).
	Fetchers int
	// MaxSocketsPerUser bounds the sockets one user may hold open on one
	// replica (default 8); more are refused with 429.
	MaxSocketsPerUser int
	// MessageRate and MessageBurst limit the messages one socket may send
	// (default 20 a second, bursts of 40).
	MessageRate  float64
	MessageBurst int
	// MaxBadMessages is how many bad messages (malformed, unknown type,
	// rate limited, refused) one socket may send within BadMessageWindow
	// before it is closed with 1008 (default 10 in a minute).
	MaxBadMessages   int
	BadMessageWindow time.Duration

	// PushKinds are the event kinds also sent as Web Push when no socket
	// took them (default DefaultPushKinds).
	PushKinds []string
	// PushDelay is how long an important event waits for a socket before
	// it is pushed (default 3 s).
	PushDelay time.Duration
	// PushPoll is how often each replica looks for due pushes (default 1 s).
	PushPoll time.Duration
	// PushRetry is the first retry delay after a failed push; it doubles up
	// to 10 minutes (default 10 s). PushAttempts is how many tries an event
	// gets (default 8).
	PushRetry    time.Duration
	PushAttempts int
	// PushTTL is how long a push service keeps an undelivered push (default 1 h).
	PushTTL time.Duration
	// PushSubject is the VAPID contact: a mailto: or https: URL (default
	// mailto:operations@lastmile.invalid).
	PushSubject string
	// Pusher sends pushes; nil means Web Push with the server's VAPID keys.
	Pusher Pusher
	// AllowInsecurePush accepts http:// push endpoints and endpoints on
	// loopback or private addresses. Tests only: in production it would let
	// a client make the server call internal services.
	AllowInsecurePush bool
}

func (c *Config) defaults() error {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDur(&c.Retention, 7*24*time.Hour)
	setDur(&c.CleanupInterval, 10*time.Minute)
	setDur(&c.PingInterval, 30*time.Second)
	setDur(&c.PongTimeout, 15*time.Second)
	setDur(&c.SlowTimeout, 10*time.Second)
	setDur(&c.WriteTimeout, 10*time.Second)
	setDur(&c.CatchUpInterval, 5*time.Second)
	setDur(&c.BadMessageWindow, time.Minute)
	setDur(&c.PushDelay, 3*time.Second)
	setDur(&c.PushPoll, time.Second)
	setDur(&c.PushRetry, 10*time.Second)
	setDur(&c.PushTTL, time.Hour)
	if c.SendBuffer <= 0 {
		c.SendBuffer = 64
	}
	if c.SendBuffer < 2 {
		c.SendBuffer = 2
	}
	if c.MaxSocketsPerUser <= 0 {
		c.MaxSocketsPerUser = 8
	}
	if c.Fetchers <= 0 {
		c.Fetchers = 4
	}
	if c.MessageRate <= 0 {
		c.MessageRate = 20
	}
	if c.MessageBurst <= 0 {
		c.MessageBurst = 40
	}
	if c.MaxBadMessages <= 0 {
		c.MaxBadMessages = 10
	}
	if c.PushKinds == nil {
		c.PushKinds = DefaultPushKinds
	}
	if c.PushAttempts <= 0 {
		c.PushAttempts = 8
	}
	if c.PushSubject == "" {
		c.PushSubject = "mailto:operations@lastmile.invalid"
	}
	for _, p := range c.AllowedOrigins {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("allowed origin pattern %q: %w", p, err)
		}
	}
	return nil
}

// Event is one stored notification for one user.
type Event struct {
	UserID uuid.UUID       `json:"-"`
	Seq    int64           `json:"seq"`
	Kind   string          `json:"kind"`
	At     time.Time       `json:"at"`
	Data   json.RawMessage `json:"data"`
}

// HandlerFunc handles one client message of a registered type; raw is the
// whole message, valid only until the handler returns (its buffer then
// holds the next message of some socket: copy what you keep). It runs on the socket's reader, so it must not block for
// long. An error of a fault kind is sent back as an error message with that
// kind as its code (or the error's own ErrorCode() string, when it has
// one); any other error is logged and sent as "internal".
type HandlerFunc func(ctx context.Context, p identity.Principal, raw json.RawMessage) error

// Authenticator checks tokens: one when a socket opens, and those of all
// of this replica's sockets at once every PingInterval (user.Tokens).
type Authenticator interface {
	identity.Authenticator
	// Invalid returns those of tokens that no longer authenticate anyone
	// (unknown, expired or revoked).
	Invalid(ctx context.Context, tokens []string) ([]string, error)
}

// Service owns event streams, sockets and pushes.
type Service struct {
	pool    *pgxpool.Pool
	q       *notifydb.Queries
	auth    Authenticator
	cfg     Config
	logger  *slog.Logger
	m       *metrics
	now     func() time.Time
	replica string // tells this replica's own disposable messages apart
	hub     *hub
	pusher  Pusher

	pushKinds map[string]bool

	handlersMu sync.RWMutex
	handlers   map[string]HandlerFunc

	// acks carries stored push-marked events that reached a socket to the
	// worker that cancels their pushes.
	acks chan eventRef

	vapidMu sync.Mutex
	vapid   *vapidKeys

	// listens counts successful LISTENs; listened is signalled after each
	// (tests wait on it).
	listens  atomic.Int64
	listened chan struct{}
}

// New returns the event stream service. It registers its metrics on reg.
func New(pool *pgxpool.Pool, auth Authenticator, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &Service{
		pool: pool, q: notifydb.New(pool), auth: auth, cfg: cfg, logger: logger, m: m,
		now: time.Now, replica: hex.EncodeToString(id[:]),
		pushKinds: map[string]bool{},
		handlers:  map[string]HandlerFunc{},
		acks:      make(chan eventRef, 1024),
		listened:  make(chan struct{}, 1),
	}
	s.hub = newHub(m, cfg.MaxSocketsPerUser)
	for _, k := range cfg.PushKinds {
		s.pushKinds[k] = true
	}
	s.pusher = cfg.Pusher
	if s.pusher == nil {
		s.pusher = newWebPusher(s)
	}
	return s, nil
}

// Handle routes client messages of type msgType to h. Register handlers
// before serving; registering a type again replaces its handler. The type
// "ping" is the server's own.
func (s *Service) Handle(msgType string, h HandlerFunc) {
	s.handlersMu.Lock()
	defer s.handlersMu.Unlock()
	s.handlers[msgType] = h
}

func (s *Service) handler(msgType string) (HandlerFunc, []string) {
	s.handlersMu.RLock()
	defer s.handlersMu.RUnlock()
	h, ok := s.handlers[msgType]
	if ok {
		return h, nil
	}
	known := []string{"ping"}
	for t := range s.handlers {
		known = append(known, t)
	}
	slices.Sort(known)
	return nil, known
}

// Message is one event to append with AppendMany.
type Message struct {
	UserID uuid.UUID
	Kind   string
	Data   any
}

// Append stores an event for userID as part of tx, so that it exists if and
// only if tx commits, and returns it with its sequence number (one more than
// the user's previous event). Every replica is told on commit and delivers
// it to the user's sockets; an event of a kind in Config.PushKinds is also
// pushed when no socket takes it. kind is 1 to 100 characters; data is
// encoded as JSON (nil becomes {}).
//
// Appending holds a lock on the user's stream until tx ends. The
// transactions here that append for several users (a match, a trip's
// moves, cancellations) cannot deadlock on these locks because each first
// locks the route it changes, so two that could share users are
// serialized on that lock before they append. A transaction that appends
// for several users without such a lock uses AppendMany, which takes the
// stream locks in a fixed order.
func (s *Service) Append(ctx context.Context, tx pgx.Tx, userID uuid.UUID, kind string, data any) (Event, error) {
	return s.append(ctx, tx, Message{UserID: userID, Kind: kind, Data: data})
}

// AppendMany appends msgs in one transaction like Append, taking the users'
// locks in the order of their ids so that two transactions cannot deadlock,
// and returns the events in the order of msgs.
func (s *Service) AppendMany(ctx context.Context, tx pgx.Tx, msgs []Message) ([]Event, error) {
	order := make([]int, len(msgs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return bytes.Compare(msgs[a].UserID[:], msgs[b].UserID[:])
	})
	out := make([]Event, len(msgs))
	for _, i := range order {
		ev, err := s.append(ctx, tx, msgs[i])
		if err != nil {
			return nil, err
		}
		out[i] = ev
	}
	return out, nil
}

func (s *Service) append(ctx context.Context, tx pgx.Tx, m Message) (Event, error) {
	if n := utf8.RuneCountInString(m.Kind); n < 1 || n > 100 {
		return Event{}, fmt.Errorf("append event: kind %q must be 1 to 100 characters", m.Kind)
	}
	data, err := json.Marshal(m.Data)
	if err != nil {
		return Event{}, fmt.Errorf("append %s event: encode data: %w", m.Kind, err)
	}
	if string(data) == "null" {
		data = []byte("{}")
	}
	if len(data) > maxEventData {
		return Event{}, fmt.Errorf("append %s event: data is %d bytes, more than %d", m.Kind, len(data), maxEventData)
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	push := s.pushKinds[m.Kind]
	seq, err := s.q.WithTx(tx).AppendEvent(ctx, notifydb.AppendEventParams{
		UserID: m.UserID, Kind: m.Kind, Data: data, At: at, Push: push, PushDueAt: at.Add(s.cfg.PushDelay),
	})
	if err != nil {
		return Event{}, fmt.Errorf("append %s event for user %s: %w", m.Kind, m.UserID, err)
	}
	s.m.appended.Inc()
	return Event{UserID: m.UserID, Seq: seq, Kind: m.Kind, At: at, Data: data}, nil
}

// maxNotifyPayload keeps a NOTIFY payload under Postgres's 8000-byte limit.
const maxNotifyPayload = 7900

// livePayload is a disposable message as sent between replicas.
type livePayload struct {
	Replica string          `json:"r"`
	Users   []uuid.UUID     `json:"u"`
	Msg     json.RawMessage `json:"m"`
}

// Publish sends a disposable message to the sockets of userIDs on every
// replica: {"type":"event","kind":kind,"at":...,"data":data}, without seq.
// It is never stored, so a user without an open socket misses it, and it
// is the first thing dropped for a socket that falls behind. Use it for
// high-rate updates that the next one replaces (a driver's position).
// data must encode to at most about 7 KB.
func (s *Service) Publish(ctx context.Context, userIDs []uuid.UUID, kind string, data any) error {
	if len(userIDs) == 0 {
		return nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("publish %s: encode data: %w", kind, err)
	}
	at := s.now().UTC()
	msg, err := json.Marshal(wireMessage{Type: "event", Kind: kind, At: &at, Data: raw})
	if err != nil {
		return fmt.Errorf("publish %s: %w", kind, err)
	}
	const idBytes = 39 // a quoted UUID and a comma
	room := (maxNotifyPayload - len(msg) - len(s.replica) - 32) / idBytes
	if room < 1 {
		return fmt.Errorf("publish %s: message is %d bytes, too big for a notification", kind, len(msg))
	}
	s.hub.publish(userIDs, msg)
	for chunk := range slices.Chunk(userIDs, room) {
		payload, err := json.Marshal(livePayload{Replica: s.replica, Users: chunk, Msg: msg})
		if err != nil {
			return fmt.Errorf("publish %s: %w", kind, err)
		}
		if err := s.q.Notify(ctx, notifydb.NotifyParams{Channel: liveChannel, Payload: string(payload)}); err != nil {
			return fmt.Errorf("publish %s to other replicas: %w", kind, err)
		}
	}
	return nil
}

// DisconnectUser closes the sockets of userID on every replica (with 1000
// and reason "signed out"), within a second when the replicas' listeners
// are up. Sign-out calls it.
func (s *Service) DisconnectUser(ctx context.Context, userID uuid.UUID) error {
	s.hub.closeUser(userID, closeSignedOut)
	if err := s.q.Notify(ctx, notifydb.NotifyParams{Channel: controlChannel, Payload: "disconnect " + userID.String()}); err != nil {
		return fmt.Errorf("disconnect user %s on other replicas: %w", userID, err)
	}
	return nil
}

// GoAway closes every socket with 1001 (going away) and refuses new ones;
// it returns once every socket has finished its close, or when ctx ends.
// Call it at shutdown, and wait for it: a process that exits sooner cuts
// the sockets still closing without a close frame.
func (s *Service) GoAway(ctx context.Context) {
	socks := s.hub.shutdown()
	for _, k := range socks {
		k.close(closeGoingAway)
	}
	for _, k := range socks {
		select {
		case <-k.done:
		case <-ctx.Done():
			return
		}
	}
}

// Run delivers events until ctx is cancelled: it listens for notifications
// (reconnecting with backoff), loads new events for this replica's sockets,
// checks them periodically for missed notifications, deletes old events
// and sends pushes. It returns nil once ctx is cancelled. Call it once.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.listen(ctx) })
	for range s.cfg.Fetchers {
		g.Go(func() error { return s.fetchLoop(ctx) })
	}
	g.Go(func() error { return s.catchUpLoop(ctx) })
	g.Go(func() error { return s.tokenLoop(ctx) })
	g.Go(func() error { return s.cleanupLoop(ctx) })
	g.Go(func() error { return s.pushLoop(ctx) })
	g.Go(func() error { return s.ackLoop(ctx) })
	return g.Wait()
}

// every runs fn now and then every d until ctx is cancelled.
func every(ctx context.Context, d time.Duration, fn func(context.Context)) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// cleanupLoop deletes events older than the retention period, and expired
// push subscriptions.
func (s *Service) cleanupLoop(ctx context.Context) error {
	return every(ctx, s.cfg.CleanupInterval, func(ctx context.Context) {
		if _, err := s.cleanup(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("delete old events", "err", err)
		}
	})
}

// cleanup deletes what has outlived its retention and returns how many
// events it deleted.
func (s *Service) cleanup(ctx context.Context) (int64, error) {
	const batch = 5000
	before := s.now().Add(-s.cfg.Retention)
	var total int64
	for {
		n, err := s.q.DeleteOldEvents(ctx, notifydb.DeleteOldEventsParams{Before: before, Max: batch})
		total += n
		if err != nil {
			return total, fmt.Errorf("delete events before %s: %w", before.Format(time.RFC3339), err)
		}
		if n < batch {
			break
		}
	}
	now := s.now()
	if _, err := s.q.DeleteExpiredPushSubscriptions(ctx, &now); err != nil {
		return total, fmt.Errorf("delete expired push subscriptions: %w", err)
	}
	if total > 0 {
		s.logger.Info("deleted old events", "count", total)
	}
	return total, nil
}

// EventPage is one page of a user's events.
type EventPage struct {
	Events []Event `json:"events"`
	// LastSeq is the user's newest event number (0 when none).
	LastSeq int64 `json:"last_seq"`
	// NextCursor, when set, is the since that reads the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// Events returns up to limit of userID's kept events after since, oldest
// first (since 0: from the oldest kept). It returns ErrSinceTooOld when the
// event after since is no longer kept, or since is beyond the user's newest
// event.
func (s *Service) Events(ctx context.Context, userID uuid.UUID, since int64, limit int) (EventPage, error) {
	b, err := s.q.StreamBounds(ctx, userID)
	if err != nil {
		return EventPage{}, fmt.Errorf("read event stream of user %s: %w", userID, err)
	}
	if tooOld(since, b) {
		return EventPage{}, ErrSinceTooOld
	}
	rows, err := s.q.ListEvents(ctx, notifydb.ListEventsParams{UserID: userID, Seq: since, Limit: int32(limit + 1)})
	if err != nil {
		return EventPage{}, fmt.Errorf("list events of user %s: %w", userID, err)
	}
	page := EventPage{Events: make([]Event, 0, min(len(rows), limit)), LastSeq: b.LastSeq}
	for i, r := range rows {
		if i == limit {
			page.NextCursor = fmt.Sprint(rows[i-1].Seq)
			break
		}
		page.Events = append(page.Events, Event{UserID: userID, Seq: r.Seq, Kind: r.Kind, At: r.At.UTC(), Data: r.Data})
	}
	return page, nil
}

// tooOld reports whether a client that saw events up to since cannot get
// every later one: the next is deleted, or since was never given out.
// since 0 asks for whatever is kept, and is never too old.
func tooOld(since int64, b notifydb.StreamBoundsRow) bool {
	if since == 0 {
		return false
	}
	if since > b.LastSeq {
		return true
	}
	return since < b.LastSeq && (b.FirstSeq == 0 || b.FirstSeq > since+1)
}
