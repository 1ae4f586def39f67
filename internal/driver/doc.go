// Package driver owns drivers' routes (offers): the stations passed, the
// destination area, total and free seats, and the route's status.
package driver
