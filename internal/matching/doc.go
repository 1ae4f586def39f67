// Package matching owns the worker pool that turns approach events into
// matches: one Postgres transaction reserves seats, marks requests matched,
// creates or joins the trip and queues the events.
package matching
