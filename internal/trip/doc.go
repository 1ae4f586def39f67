// Package trip owns the trip lifecycle state machine (scheduled, active,
// completed, cancelled) and the trip events that record every move.
package trip
