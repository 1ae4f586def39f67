package driver

import (
	"context"
	_ "embed"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
)

// OpenAPI describes the routes below (an OpenAPI 3.1 fragment).
//
//go:embed openapi.json
var OpenAPI []byte

// Trips cancels a route: the trip domain owns that transaction, since it
// hands the route's matched riders back to waiting.
type Trips interface {
	// CancelRoute ends the driver's route and hands its matched riders
	// back to waiting; riders on board make it a Conflict.
	CancelRoute(ctx context.Context, driverID, routeID uuid.UUID) (Route, error)
}

// Handler serves the driver routes API.
type Handler struct {
	svc   *Service
	trips Trips
}

// NewHandler returns the routes API over svc; cancelling a route goes to
// trips.
func NewHandler(svc *Service, trips Trips) *Handler { return &Handler{svc: svc, trips: trips} }

// Routes mounts the API; every call needs a token.
func (h *Handler) Routes(r chi.Router, requireAuth func(http.Handler) http.Handler, idempotent func(http.Handler) http.Handler) {
	r.Group(func(r chi.Router) {
		r.Use(requireAuth)
		r.With(idempotent).Post("/api/v1/routes", h.create)
		r.Get("/api/v1/routes/current", h.current)
		r.Get("/api/v1/routes/{route_id}", h.get)
		r.Post("/api/v1/routes/{route_id}/complete", h.complete)
		r.Post("/api/v1/routes/{route_id}/cancel", h.cancel)
	})
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r, identity.RoleDriver)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in RouteInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	route, err := h.svc.Create(r.Context(), p.UserID, in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusCreated, route)
}

func (h *Handler) current(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r, identity.RoleDriver)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	route, err := h.svc.Current(r.Context(), p.UserID)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, route)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r, identity.RoleDriver, identity.RoleOperator)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	id, err := httpx.UUIDParam(r, "route_id")
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	route, err := h.svc.Get(r.Context(), p, id)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, route)
}

func (h *Handler) complete(w http.ResponseWriter, r *http.Request) {
	h.end(w, r, h.svc.Complete)
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	h.end(w, r, h.trips.CancelRoute)
}

func (h *Handler) end(w http.ResponseWriter, r *http.Request, do func(ctx context.Context, driverID, routeID uuid.UUID) (Route, error)) {
	p, err := httpx.Caller(r, identity.RoleDriver)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	id, err := httpx.UUIDParam(r, "route_id")
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	route, err := do(r.Context(), p.UserID, id)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, route)
}
