package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/user"
)

var (
	errNoRoute = fault.New(fault.NotFound, "no such endpoint")
	errMethod  = fault.New(fault.NotFound, "method not allowed on this endpoint")
)

// app is every domain, wired together. This is the one place that knows
// each concrete type.
type app struct {
	users   *user.Service
	openapi []byte
	routes  []func(r chi.Router, requireAuth func(http.Handler) http.Handler)
	// runners are the long-lived background components, each stopped by
	// cancelling its context.
	runners []func(context.Context) error
	// closers tell long-lived connections (WebSockets) to go away at shutdown.
	closers []func()
}

func newApp(cfg config, pool *pgxpool.Pool, logger *slog.Logger, reg prometheus.Registerer) (*app, error) {
	a := &app{}
	users, err := user.New(pool, user.Config{TokenTTL: cfg.tokenTTL}, logger.With("domain", "user"))
	if err != nil {
		return nil, err
	}
	a.users = users
	a.routes = append(a.routes, user.NewHandler(users).Routes)
	a.runners = append(a.runners, users.Run)

	a.openapi, err = httpx.OpenAPI(httpx.OpenAPIBase, user.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("build the OpenAPI document: %w", err)
	}
	return a, nil
}

// mount adds every domain's routes to r.
func (a *app) mount(r chi.Router) {
	requireAuth := httpx.RequireAuth(a.users)
	httpx.ServeOpenAPI(r, a.openapi)
	for _, routes := range a.routes {
		routes(r, requireAuth)
	}
}

// goAway tells long-lived connections that the server is going away.
func (a *app) goAway() {
	for _, c := range a.closers {
		c()
	}
}
