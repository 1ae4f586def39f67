package main

import (
	"context"
	"log/slog"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/fault"
)

var (
	errNoRoute = fault.New(fault.NotFound, "no such endpoint")
	errMethod  = fault.New(fault.NotFound, "method not allowed on this endpoint")
)

// app is every domain, wired together. This is the one place that knows
// each concrete type.
type app struct {
	// runners are the long-lived background components, each stopped by
	// cancelling its context.
	runners []func(context.Context) error
	// closers tell long-lived connections (WebSockets) to go away at shutdown.
	closers []func()
}

func newApp(cfg config, pool *pgxpool.Pool, logger *slog.Logger, reg prometheus.Registerer) (*app, error) {
	a := &app{}
	return a, nil
}

// mount adds every domain's routes to r.
func (a *app) mount(r chi.Router) {}

// goAway tells long-lived connections that the server is going away.
func (a *app) goAway() {
	for _, c := range a.closers {
		c()
	}
}
