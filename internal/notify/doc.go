// Package notify owns per-user event streams: durable numbered events
// written in the caller's transaction, WebSocket delivery with resume, and
// fan-out across replicas through Postgres LISTEN/NOTIFY.
//
// How it holds together:
//
//   - An event is a row (user, seq, kind, data, at). Append takes the next
//     seq from the user's event_streams row inside the caller's transaction,
//     so appends for one user are serialized and numbers have no gaps, and
//     sends NOTIFY "user:seq", which Postgres delivers on commit.
//   - Each replica keeps one listening connection. A notification only
//     queues the user's local sockets for a load; the events themselves are
//     always read from the table, after each socket's cursor. A lost
//     notification therefore only delays an event: the listener reloads
//     every socket when it reconnects, and a periodic check compares each
//     user's last seq with what its sockets took.
//   - Each socket has a bounded buffer and one writer. A socket without room
//     falls behind and is loaded again when it drains; one that stays behind
//     is closed with 1008 and resumes with ?since=.
//   - Disposable messages (Publish) go through NOTIFY only and are never
//     stored; they are dropped first when a socket's buffer fills.
//   - Important events also get push_outbox rows in the appending
//     transaction; a socket that writes the event deletes them, and what is
//     left after a short delay is sent as Web Push (see push.go).
//
// # Loading a user's events: the fetch states
//
// The sockets one user has on a replica form a stream (hub.go). Events
// reach them only through loads run by the fetchers (fetchLoop), and a
// stream's state says where it is in that cycle; it changes only under
// hub.mu:
//
//	        wake-up*                  hub.next
//	idle ──────────────▶ queued ──────────────────▶ running
//	 ▲                    ▲  │                      │  │
//	 │                    │  │ its sockets all      │  │ wake-up*
//	 │                    │  │ left: dropped        │  ▼
//	 ├────────────────────┼──┘                      │ rerun
//	 │                    ├─── done, more events ───┤  │
//	 ├────────────────────┼─── done, no more ───────┘  │
//	 │                    └─────────── done ───────────┘
//
//	* markDirty, eventExists, setReady or markAllDirty
//
// The states:
//
//   - idle: nothing to do; a wake-up queues it.
//   - queued: in hub.queue, exactly once however many wake-ups come, so the
//     queue is bounded by the number of streams.
//   - running: one fetcher loads it (many streams per query under load); a
//     wake-up now only marks it rerun, so one user is never loaded by two
//     fetchers at once and a socket takes events in order.
//   - rerun: running, and woken meanwhile: done queues it again, so an
//     event that committed during the load is not missed.
//
// A stream whose last socket leaves is deleted from hub.streams even while
// queued; the fetcher that dequeues it sees that and drops it (idle).
//
// # Who owns what
//
//   - hub.mu guards hub.streams, hub.queue, hub.closing, every stream's
//     sockets and state, and each socket's ready flag.
//   - socket.cursor (the last stored event the socket took): its writer
//     while replaying, before the socket is ready; after, only the fetcher
//     that is running its stream, which is one at a time by the states
//     above.
//   - socket.send and socket.ctrl (slices, nil while empty) and the
//     writer's state: socket.wmu. Fetchers, Publish and the reader put in
//     without blocking and start a writer when none runs; only the writer
//     (writeLoop, one at a time, exiting when both are empty) takes out and
//     writes. The writer also owns the close handshake (finishClose), after
//     which no writer starts again.
//   - socket.behindSince and kickPending (atomics): set by fetchers when
//     the socket has no room, read and cleared by the writer, which asks
//     for a load (markDirty) once it has drained half its buffer; a fetcher
//     closes a socket behind for longer than SlowTimeout with 1008.
//   - socket.closing and why: close is called by anyone, once wins
//     (closeOnce); why is written before closing is closed.
//   - socket.limiter and strikes: the reader goroutine only.
//   - Token re-checks: tokenLoop checks the tokens of all the replica's
//     sockets in one query every PingInterval and closes the revoked ones;
//     a timer per socket (startPings) only checks that the client answers.
package notify
