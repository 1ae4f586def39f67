// Package httpx holds what every HTTP handler shares: JSON in and out with
// size caps, problem+json errors (the one table from error kind to status),
// request ids, access logs, metrics and panic recovery.
package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lastmile/lastmile/internal/fault"
)

// MaxBodyBytes caps every request body (API.md: larger gets 413).
const MaxBodyBytes = 1 << 20

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type     string             `json:"type"`
	Title    string             `json:"title"`
	Status   int                `json:"status"`
	Detail   string             `json:"detail,omitempty"`
	Instance string             `json:"instance,omitempty"`
	Errors   []fault.FieldError `json:"errors,omitempty"`
}

var statusOf = map[fault.Kind]int{
	fault.Invalid:      http.StatusUnprocessableEntity,
	fault.Malformed:    http.StatusBadRequest,
	fault.Unauthorized: http.StatusUnauthorized,
	fault.Forbidden:    http.StatusForbidden,
	fault.NotFound:     http.StatusNotFound,
	fault.BadMethod:    http.StatusMethodNotAllowed,
	fault.Conflict:     http.StatusConflict,
	fault.TooLarge:     http.StatusRequestEntityTooLarge,
	fault.RateLimited:  http.StatusTooManyRequests,
	fault.Unavailable:  http.StatusServiceUnavailable,
}

// StatusClientClosed is the status recorded for a request whose client
// went away before its answer (nginx's 499); no client ever reads it.
const StatusClientClosed = 499

// unavailableRetry is the Retry-After of a 503 that names no delay of its own.
const unavailableRetry = 2 * time.Second

// Error writes err as problem+json. Errors of a known fault kind show their
// message; any other error is logged once with the request id and shown as
// "internal error".
func Error(w http.ResponseWriter, r *http.Request, err error) {
	kind, msg, ok := fault.KindOf(err)
	p := Problem{Instance: r.URL.Path}
	switch {
	case ok:
		p.Status = statusOf[kind]
		p.Type = "urn:lastmile:problem:" + string(kind)
		p.Title = http.StatusText(p.Status)
		p.Detail = msg
		var v *fault.Validation
		if errors.As(err, &v) {
			p.Errors = v.Fields
		}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away: nobody reads this answer, and it is no
		// fault of the server. 499 (nginx's "client closed request")
		// keeps it apart from real errors in the metrics.
		Logger(r.Context()).Debug("client went away", "err", err, "method", r.Method, "path", r.URL.Path)
		p.Status = StatusClientClosed
		p.Type = "urn:lastmile:problem:client_closed"
		p.Title = "Client Closed Request"
		p.Detail = "the client closed the request"
	case errors.Is(err, context.DeadlineExceeded):
		p.Status = http.StatusServiceUnavailable
		p.Type = "urn:lastmile:problem:timeout"
		p.Title = http.StatusText(p.Status)
		p.Detail = "the request took too long; try again"
	default:
		Logger(r.Context()).Error("internal error", "err", err, "method", r.Method, "path", r.URL.Path)
		p.Status = http.StatusInternalServerError
		p.Type = "urn:lastmile:problem:internal"
		p.Title = http.StatusText(p.Status)
		p.Detail = "internal error"
	}
	if p.Status == http.StatusServiceUnavailable && ok {
		// Kept at warn: an outage shows in the log once per request, with
		// its cause, while the client sees only that it may retry.
		Logger(r.Context()).Warn("service unavailable", "err", err, "method", r.Method, "path", r.URL.Path)
	}
	after, hasAfter := fault.RetryAfterOf(err)
	switch {
	case hasAfter:
		secs := int(after.Round(time.Second) / time.Second)
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	case p.Status == http.StatusServiceUnavailable:
		// Every 503 says when to retry, so that clients and load balancers do.
		w.Header().Set("Retry-After", strconv.Itoa(int(unavailableRetry/time.Second)))
	}
	writeJSON(w, "application/problem+json", p.Status, p)
}

// JSON writes v as a JSON body with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	writeJSON(w, "application/json", status, v)
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may be gone; nothing more to do
}

// Decode reads one JSON object from r's body into v. Unknown fields, a body
// over MaxBodyBytes, trailing data and type mismatches are errors of kind
// Malformed (or TooLarge) that name the problem.
func Decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return fault.New(fault.Malformed, "Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		return decodeError(err)
	}
	// Postgres text cannot hold NUL; refuse it here rather than fail later.
	if bytes.Contains(body, []byte(`\u0000`)) {
		return fault.New(fault.Malformed, `text may not contain the NUL character (\u0000)`)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.New(fault.Malformed, "body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
		maxErr  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &maxErr):
		return fault.New(fault.TooLarge, fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes))
	case errors.Is(err, io.EOF):
		return fault.New(fault.Malformed, "body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.New(fault.Malformed, "body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return fault.New(fault.Malformed, fmt.Sprintf("body is not valid JSON (at byte %d)", syntax.Offset))
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fault.New(fault.Malformed, "body must be a JSON object")
		}
		return &fault.Validation{Fields: []fault.FieldError{{Field: field, Message: "must be a " + jsonType(typeErr.Type.Kind().String())}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fault.New(fault.Malformed, fmt.Sprintf("unknown field %q", name))
	default:
		return fault.New(fault.Malformed, "body could not be read: "+err.Error())
	}
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "list"
	case "struct", "map", "ptr":
		return "object"
	default:
		return "number"
	}
}

type ctxKey int

const loggerKey ctxKey = iota

// WithLogger returns ctx carrying a request-scoped logger.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey, l)
}

// Logger returns the request-scoped logger of ctx, or the default logger.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

var errTooLarge = fault.New(fault.TooLarge, fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes))
