package notify

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
)

// OpenAPI describes the routes below (an OpenAPI 3.1 fragment).
//
//go:embed openapi.json
var OpenAPI []byte

var (
	errNoToken     = fault.New(fault.Unauthorized, "missing bearer token: send Authorization: Bearer <token> or ?access_token=")
	errOrigin      = fault.New(fault.Forbidden, "this Origin may not open a socket here")
	errBothCursors = fault.New(fault.Malformed, "give since or cursor, not both")
)

const sinceTooOldMessage = "events after since are no longer kept (or since was never given out); reload your state over REST; the stream continues after last_seq"

// Handler serves the socket, the event list and push subscriptions.
type Handler struct {
	svc *Service
}

// NewHandler returns the events API over svc.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the API. requireAuth guards the REST calls; the socket
// authenticates itself, since a browser can only send its token in the
// query.
func (h *Handler) Routes(r chi.Router, requireAuth func(http.Handler) http.Handler) {
	r.Get("/api/v1/ws", h.serveWS)
	r.Group(func(r chi.Router) {
		r.Use(requireAuth)
		r.Get("/api/v1/events", h.listEvents)
		r.Post("/api/v1/push-subscriptions", h.subscribe)
		r.Delete("/api/v1/push-subscriptions", h.unsubscribe)
		r.Get("/api/v1/push-subscriptions/vapid-public-key", h.vapidPublicKey)
	})
}

// serveWS upgrades to a socket that streams the caller's events. The
// socket is registered before the upgrade is answered, so it gets every
// event committed after the answer.
func (h *Handler) serveWS(w http.ResponseWriter, r *http.Request) {
	s := h.svc
	if !s.originAllowed(r) {
		httpx.Error(w, r, errOrigin)
		return
	}
	tok := httpx.BearerToken(r, true)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lastmile"`)
		httpx.Error(w, r, errNoToken)
		return
	}
	p, err := s.auth.Authenticate(r.Context(), tok)
	if err != nil {
		if errors.Is(err, fault.Of(fault.Unauthorized)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lastmile", error="invalid_token"`)
		}
		httpx.Error(w, r, err)
		return
	}
	since, hasSince, err := sinceParam(r.URL.Query(), "since")
	if err != nil {
		httpx.Error(w, r, err)
		return
	}

	k := newSocket(p, s.cfg, s.m.closes)
	k.token = tok
	served := false // then the socket's own goroutine does the rest
	defer func() {
		if !served {
			close(k.done)
		}
	}()
	if err := s.hub.add(k); err != nil {
		httpx.Error(w, r, err)
		return
	}
	defer func() {
		if !served {
			s.hub.remove(k)
		}
	}()
	// Check the token again now that the socket is registered: a sign-out
	// that committed between the first check and the registration would
	// otherwise find no socket to close.
	if _, err := s.auth.Authenticate(r.Context(), tok); err != nil {
		httpx.Error(w, r, err)
		return
	}
	b, err := s.q.StreamBounds(r.Context(), p.UserID)
	if err != nil {
		httpx.Error(w, r, fmt.Errorf("read event stream of user %s: %w", p.UserID, err))
		return
	}
	replay := false
	switch {
	case !hasSince:
		k.cursor.Store(b.LastSeq)
	case tooOld(since, b):
		// The client reloads its state; the stream goes on after last_seq.
		k.cursor.Store(b.LastSeq)
		k.reply(encode(wireMessage{Type: "error", Code: "since_too_old", Message: sinceTooOldMessage, LastSeq: &b.LastSeq}))
	default:
		k.cursor.Store(since)
		replay = true
	}
	if !replay {
		s.hub.setReady(k)
	}

	// http.Server's read and write deadlines would cut a hijacked
	// connection; the socket keeps its own time.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		return // Accept answered the request
	}
	k.conn = conn
	conn.SetReadLimit(MaxClientMessage)
	// The socket runs on a goroutine of its own and this handler returns:
	// the handler's stack, deep with middleware (16 KiB), is not kept for
	// the socket's life; the reader's own stays small. GoAway waits for it
	// (k.done). The request's context ends with this handler; keep only
	// its values.
	ctx := context.WithoutCancel(r.Context())
	served = true
	go func() {
		defer close(k.done)
		defer s.hub.remove(k)
		s.serveSocket(ctx, k, replay)
	}()
}

// originAllowed reports whether a browser on r's Origin may open a socket:
// the server's own origin, or one of Config.AllowedOrigins. A request
// without Origin does not come from a browser page and is allowed.
func (s *Service) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, pattern := range s.cfg.AllowedOrigins {
		target := u.Host
		if strings.Contains(pattern, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// sinceParam reads a non-negative event number from query parameter name.
func sinceParam(q url.Values, name string) (since int64, ok bool, err error) {
	v := q.Get(name)
	if v == "" {
		return 0, false, nil
	}
	n, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil || n < 0 {
		return 0, false, &fault.Validation{Fields: []fault.FieldError{{Field: name, Message: "must be a whole number, 0 or more"}}}
	}
	return n, true, nil
}

// listEvents answers GET /api/v1/events?since=N&limit=L.
func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request) {
	s := h.svc
	p, err := httpx.Caller(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	since, hasSince, err := sinceParam(q, "since")
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	cursor, hasCursor, err := sinceParam(q, "cursor")
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if hasSince && hasCursor {
		httpx.Error(w, r, errBothCursors)
		return
	}
	if hasCursor {
		since = cursor
	}
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			httpx.Error(w, r, &fault.Validation{Fields: []fault.FieldError{{Field: "limit", Message: "must be a whole number from 1 to 100"}}})
			return
		}
		limit = n
	}
	page, err := s.Events(r.Context(), p.UserID, since, limit)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

func (h *Handler) subscribe(w http.ResponseWriter, r *http.Request) {
	s := h.svc
	p, err := httpx.Caller(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in SubscriptionInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	sub, err := s.Subscribe(r.Context(), p.UserID, in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusCreated, sub)
}

// unsubscribe answers DELETE /api/v1/push-subscriptions with the endpoint
// in the query (?endpoint=) or in a body {"endpoint": ...}.
func (h *Handler) unsubscribe(w http.ResponseWriter, r *http.Request) {
	s := h.svc
	p, err := httpx.Caller(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	endpoint := r.URL.Query().Get("endpoint")
	if endpoint == "" && r.ContentLength != 0 {
		var in struct {
			Endpoint string `json:"endpoint"`
		}
		if err := httpx.Decode(r, &in); err != nil {
			httpx.Error(w, r, err)
			return
		}
		endpoint = in.Endpoint
	}
	if err := s.Unsubscribe(r.Context(), p.UserID, endpoint); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) vapidPublicKey(w http.ResponseWriter, r *http.Request) {
	s := h.svc
	key, err := s.VAPIDPublicKey(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]string{"public_key": key})
}
