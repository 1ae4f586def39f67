package station

import (
	"bytes"
	_ "embed"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
)

// OpenAPI describes the routes below (an OpenAPI 3.1 fragment).
//
//go:embed openapi.json
var OpenAPI []byte

// Handler serves the stations API.
type Handler struct {
	svc *Service
}

// NewHandler returns the stations API over svc.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the stations API. Reads are public; writes need a token
// (requireAuth) of an operator, and creating accepts an Idempotency-Key
// (idempotent).
func (h *Handler) Routes(r chi.Router, requireAuth, idempotent func(http.Handler) http.Handler) {
	r.Get("/api/v1/stations", h.list)
	r.Get("/api/v1/stations/nearby", h.nearby)
	r.Get("/api/v1/stations/{id}", h.get)
	r.Group(func(r chi.Router) {
		r.Use(requireAuth, operatorOnly)
		r.With(idempotent).Post("/api/v1/stations", h.create)
		r.Patch("/api/v1/stations/{id}", h.update)
		r.Delete("/api/v1/stations/{id}", h.delete)
		r.With(idempotent).Post("/api/v1/stations/{id}/areas", h.createArea)
		r.Patch("/api/v1/stations/{id}/areas/{area_id}", h.updateArea)
		r.Delete("/api/v1/stations/{id}/areas/{area_id}", h.deleteArea)
		r.Post("/api/v1/stations/import", h.importFeed)
	})
}

var errUploadTooLarge = fault.New(fault.TooLarge, "the feed is larger than the 1 MiB a request may carry: upload its stops.txt alone, or run `lastmile stations import FILE`")

// importFeed imports the GTFS feed in the body (a .zip or a stops.txt),
// like `lastmile stations import`.
func (h *Handler) importFeed(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = errUploadTooLarge
		}
		httpx.Error(w, r, err)
		return
	}
	if len(body) == 0 {
		httpx.Error(w, r, &fault.Validation{Fields: []fault.FieldError{{Field: "body", Message: "send a GTFS .zip or stops.txt"}}})
		return
	}
	res, err := h.svc.ImportGTFS(r.Context(), bytes.NewReader(body), int64(len(body)))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, res)
}

// pathID reads a station or area id from the path; a value that cannot be
// an id (a stray byte, a NUL) reads as "", which no station or area has, so
// the caller answers 404 as for any unknown id.
func pathID(r *http.Request, name string) string {
	id := chi.URLParam(r, name)
	if !slugPattern.MatchString(id) || len(id) > 64 {
		return ""
	}
	return id
}

// operatorOnly answers 403 to every caller but operators.
func operatorOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := httpx.Caller(r, identity.RoleOperator); err != nil {
			httpx.Error(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	var v fault.Validation
	q := r.URL.Query()
	limit := queryLimit(&v, q)
	cursor := q.Get("cursor")
	v.Check(cursor == "" || slugPattern.MatchString(cursor), "cursor", "is not a cursor this server gave out")
	if err := v.Err(); err != nil {
		httpx.Error(w, r, err)
		return
	}
	list, next, err := h.svc.List(r.Context(), cursor, limit)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, struct {
		Stations   []Station `json:"stations"`
		NextCursor string    `json:"next_cursor,omitempty"`
	}{list, next})
}

func (h *Handler) nearby(w http.ResponseWriter, r *http.Request) {
	var v fault.Validation
	q := r.URL.Query()
	p := geo.Point{
		Lat: queryCoord(&v, q, "lat", geo.ValidLat, "between -90 and 90"),
		Lng: queryCoord(&v, q, "lng", geo.ValidLng, "between -180 and 180"),
	}
	limit := queryLimit(&v, q)
	if err := v.Err(); err != nil {
		httpx.Error(w, r, err)
		return
	}
	list, err := h.svc.Nearby(r.Context(), p, limit)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, struct {
		Stations []NearbyStation `json:"stations"`
	}{list})
}

// queryLimit reads limit: 1 to MaxPage, 20 when absent.
func queryLimit(v *fault.Validation, q url.Values) int {
	s := q.Get("limit")
	if s == "" {
		return 20
	}
	n, err := strconv.Atoi(s)
	v.Check(err == nil && n >= 1 && n <= MaxPage, "limit", "must be a whole number from 1 to 100")
	return n
}

// queryCoord reads a required coordinate that valid accepts.
func queryCoord(v *fault.Validation, q url.Values, name string, valid func(float64) bool, rng string) float64 {
	s := q.Get(name)
	if s == "" {
		v.Add(name, "is required")
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	v.Check(err == nil && valid(f), name, "must be a number "+rng)
	return f
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	st, err := h.svc.Get(r.Context(), pathID(r, "id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, st)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	var in StationInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	st, err := h.svc.Create(r.Context(), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/stations/"+st.ID)
	httpx.JSON(w, http.StatusCreated, st)
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	var in StationPatch
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	st, err := h.svc.Update(r.Context(), pathID(r, "id"), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, st)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.Delete(r.Context(), pathID(r, "id")); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) createArea(w http.ResponseWriter, r *http.Request) {
	var in AreaInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	a, err := h.svc.CreateArea(r.Context(), pathID(r, "id"), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusCreated, a)
}

func (h *Handler) updateArea(w http.ResponseWriter, r *http.Request) {
	var in AreaPatch
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	a, err := h.svc.UpdateArea(r.Context(), pathID(r, "id"), pathID(r, "area_id"), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, a)
}

func (h *Handler) deleteArea(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.DeleteArea(r.Context(), pathID(r, "id"), pathID(r, "area_id")); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
