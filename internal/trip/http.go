package trip

import (
	"context"
	_ "embed"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/location"
	"github.com/lastmile/lastmile/internal/paging"
)

// OpenAPI describes the routes below (an OpenAPI 3.1 fragment).
//
//go:embed openapi.json
var OpenAPI []byte

// Positions gives a driver's latest known position.
type Positions interface {
	Latest(ctx context.Context, driverID uuid.UUID) (location.Position, bool, error)
}

// Handler serves the trips API.
type Handler struct {
	svc       *Service
	positions Positions
}

// NewHandler returns the trips API over svc; a trip's detail shows its
// driver's latest position from positions while the trip is under way.
func NewHandler(svc *Service, positions Positions) *Handler {
	return &Handler{svc: svc, positions: positions}
}

// detail is a trip with where its driver is, for the people of the trip.
type detail struct {
	View
	DriverPosition *location.Position `json:"driver_position,omitempty"`
}

// Routes mounts the API; every call needs a token.
func (h *Handler) Routes(r chi.Router, requireAuth func(http.Handler) http.Handler) {
	r.Group(func(r chi.Router) {
		r.Use(requireAuth)
		r.Get("/api/v1/trips", h.list)
		r.Get("/api/v1/trips/{trip_id}", h.get)
		r.Post("/api/v1/trips/{trip_id}/arrived", h.tripAction(h.svc.Arrived))
		r.Post("/api/v1/trips/{trip_id}/start", h.tripAction(h.svc.Start))
		r.Post("/api/v1/trips/{trip_id}/riders/{rider_id}/picked-up", h.riderAction(h.svc.PickedUp))
		r.Post("/api/v1/trips/{trip_id}/riders/{rider_id}/no-show", h.riderAction(h.svc.NoShow))
		r.Post("/api/v1/trips/{trip_id}/riders/{rider_id}/dropped-off", h.riderAction(h.svc.DroppedOff))
	})
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	page, want, err := httpx.ListPage(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	trips, err := h.svc.List(r.Context(), p, r.URL.Query().Get("status"), page)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	trips, next := paging.Trim(trips, want, func(v View) (time.Time, uuid.UUID) { return v.CreatedAt, v.ID })
	out := map[string]any{"trips": trips}
	if next != "" {
		out["next_cursor"] = next
	}
	httpx.JSON(w, http.StatusOK, out)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	id, err := httpx.UUIDParam(r, "trip_id")
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	v, err := h.svc.Get(r.Context(), p, id)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	d := detail{View: v}
	if v.SeesDriver(p) {
		pos, ok, err := h.positions.Latest(r.Context(), v.DriverID)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		if ok {
			d.DriverPosition = &pos
		}
	}
	httpx.JSON(w, http.StatusOK, d)
}

func (h *Handler) tripAction(do func(context.Context, identity.Principal, uuid.UUID) (View, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := httpx.Caller(r, identity.RoleDriver)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		id, err := httpx.UUIDParam(r, "trip_id")
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		v, err := do(r.Context(), p, id)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, v)
	}
}

func (h *Handler) riderAction(do func(context.Context, identity.Principal, uuid.UUID, uuid.UUID) (View, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := httpx.Caller(r, identity.RoleDriver)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		id, err := httpx.UUIDParam(r, "trip_id")
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		riderID, err := httpx.UUIDParam(r, "rider_id")
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		v, err := do(r.Context(), p, id, riderID)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, v)
	}
}
