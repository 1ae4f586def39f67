package notify

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/notify/internal/notifydb"
)

// hub is this replica's registry of sockets, grouped by user, and the queue
// of users whose sockets may be missing events. Loads for one user are
// serialized: a user is queued or being loaded at most once, and a wake-up
// that arrives during a load runs it again afterwards. The queue holds each
// user at most once, so it is bounded by the number of sockets.
type hub struct {
	m *metrics
	// perUser bounds the sockets one user may hold on this replica.
	perUser int

	mu      sync.Mutex
	streams map[uuid.UUID]*stream
	queue   []*stream
	closing bool
	// wake tells one idle fetcher that the queue is not empty.
	wake chan struct{}
}

type fetchState uint8

const (
	idle    fetchState = iota
	queued             // in hub.queue
	running            // being loaded by a fetcher
	rerun              // being loaded, and to be loaded again afterwards
)

// stream is the sockets one user has on this replica.
type stream struct {
	user    uuid.UUID
	sockets map[*socket]struct{}
	state   fetchState
}

func newHub(m *metrics, perUser int) *hub {
	return &hub{m: m, perUser: perUser, streams: map[uuid.UUID]*stream{}, wake: make(chan struct{}, 1)}
}

// add registers k, not yet ready for live events. It fails once the hub is
// shutting down.
func (h *hub) add(k *socket) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return errClosing
	}
	st := h.streams[k.user]
	if st == nil {
		st = &stream{user: k.user, sockets: map[*socket]struct{}{}}
		h.streams[k.user] = st
	}
	if len(st.sockets) >= h.perUser {
		return fault.RetryAfter(errTooManySockets, 30*time.Second)
	}
	st.sockets[k] = struct{}{}
	h.m.sockets.Inc()
	return nil
}

func (h *hub) remove(k *socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.streams[k.user]
	if st == nil {
		return
	}
	if _, ok := st.sockets[k]; !ok {
		return
	}
	delete(st.sockets, k)
	h.m.sockets.Dec()
	if len(st.sockets) == 0 {
		delete(h.streams, k.user)
	}
}

// setReady makes k take live events after its cursor, and loads any that
// exist already.
func (h *hub) setReady(k *socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k.ready = true
	if st := h.streams[k.user]; st != nil {
		h.markLocked(st)
	}
}

// markDirty queues user's sockets for a load of new events.
func (h *hub) markDirty(user uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.streams[user]; st != nil {
		h.markLocked(st)
	}
}

// eventExists queues user's sockets for a load when one of them has not
// yet taken event seq.
func (h *hub) eventExists(user uuid.UUID, seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.streams[user]
	if st == nil {
		return
	}
	for k := range st.sockets {
		if k.ready && k.cursor.Load() < seq {
			h.markLocked(st)
			return
		}
	}
}

// markAllDirty queues every user, after notifications may have been missed.
func (h *hub) markAllDirty() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, st := range h.streams {
		h.markLocked(st)
	}
}

func (h *hub) markLocked(st *stream) {
	switch st.state {
	case idle:
		st.state = queued
		h.queue = append(h.queue, st)
		select {
		case h.wake <- struct{}{}:
		default:
		}
	case running:
		st.state = rerun
	}
}

// fetchJob is one queued user and its ready sockets.
type fetchJob struct {
	st    *stream
	socks []*socket
	from  int64 // the lowest cursor of a socket with room; -1: none has room
}

// next waits for queued users and returns up to limit of them with their
// ready sockets; ok is false once ctx is cancelled. Under load one fetcher
// thus loads many users with one query. The caller calls done for each.
func (h *hub) next(ctx context.Context, limit int) (jobs []fetchJob, ok bool) {
	for {
		h.mu.Lock()
		for len(h.queue) > 0 && len(jobs) < limit {
			st := h.queue[0]
			h.queue[0] = nil
			h.queue = h.queue[1:]
			if h.streams[st.user] != st {
				st.state = idle // every socket left while it waited
				continue
			}
			st.state = running
			job := fetchJob{st: st}
			for k := range st.sockets {
				if k.ready {
					job.socks = append(job.socks, k)
				}
			}
			jobs = append(jobs, job)
		}
		if len(jobs) > 0 {
			if len(h.queue) > 0 {
				select {
				case h.wake <- struct{}{}:
				default:
				}
			}
			h.mu.Unlock()
			return jobs, true
		}
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-h.wake:
		}
	}
}

// done ends a load of st's events; again queues it for another (there
// were more events than one load takes).
func (h *hub) done(st *stream, again bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if (again || st.state == rerun) && h.streams[st.user] == st {
		st.state = idle
		h.markLocked(st)
		return
	}
	st.state = idle
}

// users returns the users with a socket on this replica.
func (h *hub) users() []uuid.UUID {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]uuid.UUID, 0, len(h.streams))
	for u := range h.streams {
		out = append(out, u)
	}
	return out
}

// sockets returns every socket on this replica.
func (h *hub) sockets() []*socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*socket
	for _, st := range h.streams {
		for k := range st.sockets {
			out = append(out, k)
		}
	}
	return out
}

// publish offers a disposable message to the sockets of users.
func (h *hub) publish(users []uuid.UUID, msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range users {
		st := h.streams[u]
		if st == nil {
			continue
		}
		for k := range st.sockets {
			if !k.offerDisposable(msg) {
				h.m.disposableDropped.Inc()
			}
		}
	}
}

// closeUser closes every socket of user on this replica.
func (h *hub) closeUser(user uuid.UUID, why closeReason) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.streams[user]; st != nil {
		for k := range st.sockets {
			k.close(why)
		}
	}
}

// shutdown refuses new sockets and returns the open ones.
func (h *hub) shutdown() []*socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closing = true
	var out []*socket
	for _, st := range h.streams {
		for k := range st.sockets {
			out = append(out, k)
		}
	}
	return out
}

// fetchBatch is how many users one fetcher loads with one query.
const fetchBatch = 64

// fetchLoop loads new events for queued users and hands them to their
// sockets, until ctx is cancelled.
func (s *Service) fetchLoop(ctx context.Context) error {
	for {
		jobs, ok := s.hub.next(ctx, fetchBatch)
		if !ok {
			return nil
		}
		again := s.deliver(ctx, jobs)
		for i, job := range jobs {
			s.hub.done(job.st, again[i])
		}
	}
}

// deliver loads the events the jobs' sockets have not yet taken and queues
// them on each socket in order, each exactly once: a socket takes event
// seq only when its cursor is seq-1 (the stored sequence has no gaps), and
// its cursor then moves to seq. A socket without room falls behind; its
// writer asks for another load when it has drained half its buffer, and a
// socket that stays behind longer than SlowTimeout is closed with 1008.
// again[i] reports that job i has more events than one load takes.
func (s *Service) deliver(ctx context.Context, jobs []fetchJob) (again []bool) {
	page := s.cfg.SendBuffer
	now := s.now()
	again = make([]bool, len(jobs))
	var users []uuid.UUID
	var afters []int64
	for i := range jobs {
		job := &jobs[i]
		job.from = -1
		for _, k := range job.socks {
			k.kickPending.Store(false)
			if k.isClosing() {
				continue
			}
			if since := k.behindSince.Load(); since != 0 && now.Sub(time.Unix(0, since)) > s.cfg.SlowTimeout {
				k.close(closeSlow)
				continue
			}
			if k.sendFull() {
				k.markBehind(now)
				continue
			}
			if c := k.cursor.Load(); job.from < 0 || c < job.from {
				job.from = c
			}
		}
		if job.from >= 0 {
			users, afters = append(users, job.st.user), append(afters, job.from)
		}
	}
	if len(users) == 0 {
		return again
	}
	rows, err := s.loadEvents(ctx, users, afters, page)
	if err != nil {
		if ctx.Err() == nil {
			// The catch-up check loads them again in a few seconds.
			s.logger.Warn("load new events", "users", len(users), "err", err)
		}
		return again
	}
	byUser := make(map[uuid.UUID][]outMsg, len(users))
	for _, r := range rows {
		at := r.At.UTC()
		msg := encode(wireMessage{Type: "event", Seq: r.Seq, Kind: r.Kind, At: &at, Data: r.Data})
		byUser[r.UserID] = append(byUser[r.UserID], outMsg{data: msg, seq: r.Seq, at: r.At, push: r.Push})
	}
	for i, job := range jobs {
		if job.from < 0 {
			continue
		}
		msgs := byUser[job.st.user]
		more := len(msgs) == page
		for _, k := range job.socks {
			k.offerStored(msgs, job.from, more, now)
		}
		again[i] = more
	}
	return again
}

// loadEvents reads up to page events after afters[i] for each users[i].
func (s *Service) loadEvents(ctx context.Context, users []uuid.UUID, afters []int64, page int) ([]notifydb.Event, error) {
	if len(users) > 1 {
		return s.q.ListEventsForUsers(ctx, notifydb.ListEventsForUsersParams{UserIds: users, Afters: afters, Max: int32(page)})
	}
	// One user, the usual case when not busy: the plainer query is quicker.
	rows, err := s.q.ListEvents(ctx, notifydb.ListEventsParams{UserID: users[0], Seq: afters[0], Limit: int32(page)})
	out := make([]notifydb.Event, len(rows))
	for i, r := range rows {
		out[i] = notifydb.Event{UserID: users[0], Seq: r.Seq, Kind: r.Kind, Data: r.Data, At: r.At, Push: r.Push}
	}
	return out, err
}

// catchUpLoop finds sockets that miss events although no notification
// said so (the listener was down, or a notification was lost), and loads
// them.
func (s *Service) catchUpLoop(ctx context.Context) error {
	return every(ctx, s.cfg.CatchUpInterval, s.catchUp)
}

func (s *Service) catchUp(ctx context.Context) {
	for chunk := range slices.Chunk(s.hub.users(), 5000) {
		rows, err := s.q.LastSeqs(ctx, chunk)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("check sockets for missed events", "err", err)
			}
			return
		}
		for _, r := range rows {
			s.hub.eventExists(r.UserID, r.LastSeq)
		}
	}
}

// wireMessage is every message the server sends on a socket.
type wireMessage struct {
	Type    string          `json:"type"`
	Seq     int64           `json:"seq,omitempty"`
	Kind    string          `json:"kind,omitempty"`
	At      *time.Time      `json:"at,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	LastSeq *int64          `json:"last_seq,omitempty"`
}

func encodeEvent(r notifydb.ListEventsRow) []byte {
	at := r.At.UTC()
	return encode(wireMessage{Type: "event", Seq: r.Seq, Kind: r.Kind, At: &at, Data: r.Data})
}

func encodeError(code, message string) []byte {
	return encode(wireMessage{Type: "error", Code: code, Message: message})
}

var pongMessage = encode(wireMessage{Type: "pong"})

func encode(m wireMessage) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		// Only RawMessage data could fail, and it comes from jsonb.
		return []byte(`{"type":"error","code":"internal","message":"could not encode a message"}`)
	}
	return b
}
