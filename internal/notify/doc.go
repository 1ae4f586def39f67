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
package notify
