// Package notify owns per-user event streams: durable numbered events
// written in the caller's transaction, WebSocket delivery with resume, and
// fan-out across replicas through Postgres LISTEN/NOTIFY.
package notify
