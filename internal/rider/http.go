package rider

import (
	"context"
	_ "embed"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/paging"
)

// OpenAPI describes the routes below (an OpenAPI 3.1 fragment).
//
//go:embed openapi.json
var OpenAPI []byte

// Matcher asks for a ride: the matching domain records the request (with
// Service.Create) and offers it at once to drivers already approaching its
// station.
type Matcher interface {
	Request(ctx context.Context, riderID uuid.UUID, in RequestInput) (Request, error)
}

// Trips cancels a ride request: the trip domain owns that transaction,
// since a matched rider leaves their trip and frees its seats. A request
// past pickup, or already ended, is a Conflict.
type Trips interface {
	CancelRequest(ctx context.Context, p identity.Principal, id uuid.UUID) (Request, error)
}

// Handler serves the ride requests API.
type Handler struct {
	svc     *Service
	matcher Matcher
	trips   Trips
}

// NewHandler returns the ride requests API over svc; asking for a ride
// goes to matcher, cancelling one to trips.
func NewHandler(svc *Service, matcher Matcher, trips Trips) *Handler {
	return &Handler{svc: svc, matcher: matcher, trips: trips}
}

// Routes mounts the API; every call needs a token, and creating accepts an
// Idempotency-Key.
func (h *Handler) Routes(r chi.Router, requireAuth func(http.Handler) http.Handler, idempotent func(http.Handler) http.Handler) {
	r.Group(func(r chi.Router) {
		r.Use(requireAuth)
		r.With(idempotent).Post("/api/v1/ride-requests", h.create)
		r.Get("/api/v1/ride-requests", h.list)
		r.Get("/api/v1/ride-requests/stats", h.stats)
		r.Get("/api/v1/ride-requests/{request_id}", h.get)
		r.Post("/api/v1/ride-requests/{request_id}/cancel", h.cancel)
	})
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r, identity.RoleRider)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in RequestInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	req, err := h.matcher.Request(r.Context(), p.UserID, in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusCreated, req)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r, identity.RoleRider, identity.RoleOperator)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	page, want, err := httpx.ListPage(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	reqs, err := h.svc.List(r.Context(), p, r.URL.Query().Get("status"), page)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	reqs, next := paging.Trim(reqs, want, func(q Request) (time.Time, uuid.UUID) { return q.CreatedAt, q.ID })
	out := map[string]any{"ride_requests": reqs}
	if next != "" {
		out["next_cursor"] = next
	}
	httpx.JSON(w, http.StatusOK, out)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r, identity.RoleRider, identity.RoleOperator)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	id, err := httpx.UUIDParam(r, "request_id")
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	req, err := h.svc.Get(r.Context(), p, id)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, req)
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r, identity.RoleRider, identity.RoleOperator)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	id, err := httpx.UUIDParam(r, "request_id")
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	req, err := h.trips.CancelRequest(r.Context(), p, id)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, req)
}

// stats answers the operator's live counters.
func (h *Handler) stats(w http.ResponseWriter, r *http.Request) {
	if _, err := httpx.Caller(r, identity.RoleOperator); err != nil {
		httpx.Error(w, r, err)
		return
	}
	st, err := h.svc.Stats(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, st)
}
