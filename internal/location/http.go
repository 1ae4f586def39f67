package location

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/flatjson"
	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
)

// OpenAPI describes the routes below (an OpenAPI 3.1 fragment).
//
//go:embed openapi.json
var OpenAPI []byte

// FixInput is one fix as clients send it, over the socket (with "type":
// "location") or over REST.
type FixInput struct {
	Type     string   `json:"type,omitempty"`
	Lat      *float64 `json:"lat"`
	Lng      *float64 `json:"lng"`
	At       *string  `json:"at,omitempty"`
	SpeedMps *float64 `json:"speed_mps,omitempty"`
	Heading  *float64 `json:"heading,omitempty"`
}

// fix turns the input into a Fix, naming a missing or malformed field.
func (in FixInput) fix() (Fix, error) {
	switch {
	case in.Lat == nil:
		return Fix{}, reject("invalid_lat", "lat is required")
	case in.Lng == nil:
		return Fix{}, reject("invalid_lng", "lng is required")
	}
	f := Fix{Point: geo.Point{Lat: *in.Lat, Lng: *in.Lng}, SpeedMps: in.SpeedMps, Heading: in.Heading}
	if in.At != nil {
		at, err := time.Parse(time.RFC3339Nano, *in.At)
		if err != nil {
			return Fix{}, reject("invalid_at", "at must be an RFC 3339 time")
		}
		f.At = at
	}
	return f, nil
}

// scanFix reads a location message the way every client writes it (flat,
// lower-case keys, numbers and plain strings) without encoding/json's
// reflection; ok is false for anything else (an unknown or differently
// cased key, null, a value of the wrong kind, a number out of range),
// which HandleMessage then decodes with encoding/json, so clients see
// the same errors as before. Like encoding/json, the last of repeated
// keys wins.
func scanFix(raw []byte) (in FixInput, ok bool) {
	nums := new([4]float64) // one allocation for the four fields
	lat, lng, speed, heading := &nums[0], &nums[1], &nums[2], &nums[3]
	num := func(val []byte, dst *float64, field **float64) bool {
		v, err := strconv.ParseFloat(string(val), 64)
		if err != nil {
			return false
		}
		*dst, *field = v, dst
		return true
	}
	ok = flatjson.Scan(raw, func(key []byte, kind flatjson.Kind, val []byte) bool {
		switch string(key) {
		case "type":
			if kind != flatjson.String {
				return false
			}
			in.Type = string(val)
			return true
		case "at":
			if kind != flatjson.String {
				return false
			}
			at := string(val)
			in.At = &at
			return true
		}
		if kind != flatjson.Number {
			return false
		}
		switch string(key) {
		case "lat":
			return num(val, lat, &in.Lat)
		case "lng":
			return num(val, lng, &in.Lng)
		case "speed_mps":
			return num(val, speed, &in.SpeedMps)
		case "heading":
			return num(val, heading, &in.Heading)
		}
		return false
	})
	if !ok {
		return FixInput{}, false
	}
	return in, true
}

var errNotDriver = fault.New(fault.Forbidden, "only drivers send locations")

// HandleMessage takes a "location" message from a WebSocket. Its errors are
// sent back to the client as error messages; the socket stays open.
func (s *Service) HandleMessage(_ context.Context, p identity.Principal, raw json.RawMessage) error {
	if p.Role != identity.RoleDriver {
		return errNotDriver
	}
	f, err := decodeFixMessage(raw)
	if err != nil {
		return err
	}
	return s.Ingest(p.UserID, f)
}

// decodeFixMessage reads a socket "location" message; its errors are
// *Rejection with a code.
func decodeFixMessage(raw json.RawMessage) (Fix, error) {
	if in, ok := scanFix(raw); ok {
		return in.fix()
	}
	var in FixInput
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Fix{}, reject("malformed_location", "a location message is {type, lat, lng, at?, speed_mps?, heading?}: %s", err.Error())
	}
	return in.fix()
}

// Handler serves the REST location API.
type Handler struct {
	svc       *Service
	positions *Positions
}

// NewHandler returns the REST location API: fixes go to svc, the live map
// reads positions.
func NewHandler(svc *Service, positions *Positions) *Handler {
	return &Handler{svc: svc, positions: positions}
}

// Routes mounts the API.
func (h *Handler) Routes(r chi.Router, requireAuth func(http.Handler) http.Handler) {
	r.With(requireAuth).Post("/api/v1/location", h.post)
	r.With(requireAuth).Get("/api/v1/drivers/positions", h.online)
}

// online answers the operator's live map: the latest position of every
// online driver, 100 at most per page (limit, cursor, next_cursor).
func (h *Handler) online(w http.ResponseWriter, r *http.Request) {
	if _, err := httpx.Caller(r, identity.RoleOperator); err != nil {
		httpx.Error(w, r, err)
		return
	}
	var v fault.Validation
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		v.Check(err == nil && n >= 1 && n <= 100, "limit", "must be a whole number from 1 to 100")
		limit = n
	}
	var after uuid.UUID
	if c := q.Get("cursor"); c != "" {
		id, err := uuid.Parse(c)
		v.Check(err == nil, "cursor", "is not a cursor this server gave out")
		after = id
	}
	if err := v.Err(); err != nil {
		httpx.Error(w, r, err)
		return
	}
	ps, err := h.positions.Online(r.Context(), after, limit+1)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	out := map[string]any{}
	if len(ps) > limit {
		ps = ps[:limit]
		out["next_cursor"] = ps[limit-1].DriverID.String()
	}
	out["positions"] = ps
	httpx.JSON(w, http.StatusOK, out)
}

// maxBatch bounds the fixes of one POST.
const maxBatch = 100

type rejected struct {
	Index   int    `json:"index"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// post takes one fix, or {"fixes": [...]} with up to 100, for clients that
// cannot hold a socket. Each fix is checked as over the socket; the answer
// says how many were applied and why any others were not.
func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r, identity.RoleDriver)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in struct {
		FixInput
		Fixes []FixInput `json:"fixes"`
	}
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	fixes := in.Fixes
	if len(fixes) == 0 {
		fixes = []FixInput{in.FixInput}
	} else if in.Lat != nil || in.Lng != nil {
		httpx.Error(w, r, fault.New(fault.Malformed, "send either one fix or fixes, not both"))
		return
	}
	if len(fixes) > maxBatch {
		httpx.Error(w, r, &fault.Validation{Fields: []fault.FieldError{{Field: "fixes", Message: fmt.Sprintf("at most %d fixes per request", maxBatch)}}})
		return
	}
	out := struct {
		Accepted int        `json:"accepted"`
		Rejected []rejected `json:"rejected"`
	}{Rejected: []rejected{}}
	for i, fi := range fixes {
		f, err := fi.fix()
		if err == nil {
			err = h.svc.Ingest(p.UserID, f)
		}
		var rej *Rejection
		switch {
		case err == nil:
			out.Accepted++
		case errors.As(err, &rej):
			out.Rejected = append(out.Rejected, rejected{Index: i, Code: rej.Code, Message: rej.Message})
		default:
			httpx.Error(w, r, err)
			return
		}
	}
	status := http.StatusOK
	if out.Accepted == 0 {
		status = http.StatusUnprocessableEntity
	}
	httpx.JSON(w, status, out)
}
