package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/driver"
	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/idempotency"
	"github.com/lastmile/lastmile/internal/location"
	"github.com/lastmile/lastmile/internal/matching"
	"github.com/lastmile/lastmile/internal/notify"
	"github.com/lastmile/lastmile/internal/rider"
	"github.com/lastmile/lastmile/internal/station"
	"github.com/lastmile/lastmile/internal/trip"
	"github.com/lastmile/lastmile/internal/user"
	"github.com/lastmile/lastmile/web"
)

var (
	errNoRoute = fault.New(fault.NotFound, "no such endpoint")
	errMethod  = fault.New(fault.BadMethod, "this endpoint does not serve this method; see the Allow header")
)

// app is every domain, wired together. This is the one place that knows
// each concrete type.
type app struct {
	tokens     *user.Tokens
	users      *user.Service
	stations   *station.Service
	notify     *notify.Service
	drivers    *driver.Service
	riders     *rider.Service
	trips      *trip.Service
	location   *location.Service
	positions  *location.Positions
	matching   *matching.Service
	idempotent *idempotency.Store
	openapi    []byte
	web        *web.App
	// trustedProxies are the load balancers whose X-Forwarded-For is believed.
	trustedProxies []netip.Prefix
	// runners are the long-lived background components, each stopped by
	// cancelling its context.
	runners []func(context.Context) error
}

func newApp(cfg config, pool *pgxpool.Pool, logger *slog.Logger, reg prometheus.Registerer) (*app, error) {
	a := &app{trustedProxies: cfg.trustedProxies}
	log := func(domain string) *slog.Logger { return logger.With("domain", domain) }
	// Each service is built after everything it needs, so nothing is wired
	// later: tokens before notify (which checks them) before users (whose
	// sign-out closes notify's sockets); positions before matching before
	// location (matching is where location's approaches go).
	signup, signin := cfg.userLimits()
	a.tokens = user.NewTokens(pool)
	var err error
	a.notify, err = notify.New(pool, a.tokens, notify.Config{
		Retention: cfg.eventRetention, AllowedOrigins: cfg.allowedOrigins,
	}, log("notify"), reg)
	if err != nil {
		return nil, err
	}
	if a.users, err = user.New(pool, user.Config{TokenTTL: cfg.tokenTTL, SignUpLimit: signup, LoginLimit: signin}, a.notify, log("user")); err != nil {
		return nil, err
	}
	a.stations = station.New(pool, log("station"))
	ev := events{a.notify}
	a.drivers = driver.New(pool, log("driver"))
	a.riders = rider.New(pool, rider.Config{ExpireAfter: cfg.requestExpiry}, ev, log("rider"))
	a.trips = trip.New(pool, trip.Config{NoShowWait: cfg.noShowWait}, ev, a.riders, a.drivers, log("trip"))
	a.positions = location.NewPositions(pool, cfg.offlineAfter)
	a.matching = matching.New(pool, matching.Config{Workers: cfg.matchWorkers, Grace: cfg.matchGrace, OfflineAfter: cfg.offlineAfter},
		a.drivers, a.riders, a.trips, ev, a.positions, names{a.users}, log("matching"), reg)
	a.location = location.New(pool, location.Config{
		OfflineAfter: cfg.offlineAfter, Limits: location.Limits{MaxSpeedMps: cfg.maxSpeedKmh / 3.6}, ApproachEvery: cfg.approachEvery,
	}, routeSource{a.drivers, a.stations, a.trips}, a.matching, a.notify, log("location"), reg)
	a.notify.Handle("location", a.location.HandleMessage)
	a.idempotent = idempotency.New(pool, log("idempotency"), idempotency.Config{})

	a.runners = append(a.runners, a.users.Run, a.notify.Run, a.riders.Run, a.location.Run, a.matching.Run, a.idempotent.Run)

	if a.web, err = web.New(cfg.mapTiles); err != nil {
		return nil, err
	}
	a.openapi, err = httpx.OpenAPI(httpx.OpenAPIBase, user.OpenAPI, station.OpenAPI, notify.OpenAPI,
		driver.OpenAPI, rider.OpenAPI, trip.OpenAPI, location.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("build the OpenAPI document: %w", err)
	}
	return a, nil
}

// start does what must happen once before serving: fill an empty station
// catalog from the default data set.
func (a *app) start(ctx context.Context) error {
	return a.stations.Seed(ctx)
}

// mount adds every domain's routes to r.
func (a *app) mount(r chi.Router) {
	requireAuth := httpx.RequireAuth(a.tokens)
	idem := httpx.Idempotent(a.idempotent)
	httpx.ServeOpenAPI(r, a.openapi)
	user.NewHandler(a.users).Routes(r, requireAuth)
	station.NewHandler(a.stations).Routes(r, requireAuth, idem)
	notify.NewHandler(a.notify).Routes(r, requireAuth)
	driver.NewHandler(a.drivers, a.trips).Routes(r, requireAuth, idem)
	rider.NewHandler(a.riders, a.matching, a.trips).Routes(r, requireAuth, idem)
	trip.NewHandler(a.trips, a.positions).Routes(r, requireAuth)
	location.NewHandler(a.location, a.positions).Routes(r, requireAuth)
	r.Group(func(r chi.Router) {
		r.Use(middleware.Compress(5))
		a.web.Routes(r)
	})
}

// goAway tells long-lived connections that the server is going away, and
// returns once they are closed or ctx ends.
func (a *app) goAway(ctx context.Context) {
	a.notify.GoAway(ctx)
}
