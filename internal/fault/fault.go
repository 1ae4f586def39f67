// Package fault classifies errors by kind, so that every domain can say what
// went wrong without knowing about HTTP, and httpx can map each kind to one
// status code in one place.
package fault

import (
	"errors"
	"strings"
	"time"
)

// Kind is a class of failure a client can act on.
type Kind string

// The kinds of failure. Each maps to exactly one HTTP status in httpx.
const (
	Invalid      Kind = "invalid"      // well-formed but invalid values (422)
	Malformed    Kind = "malformed"    // the request cannot be read (400)
	Unauthorized Kind = "unauthorized" // no or bad credentials (401)
	Forbidden    Kind = "forbidden"    // authenticated, wrong role (403)
	NotFound     Kind = "not_found"    // unknown, or not the caller's (404)
	BadMethod    Kind = "bad_method"   // a known path, a method it does not serve (405)
	Conflict     Kind = "conflict"     // the current state forbids it (409)
	TooLarge     Kind = "too_large"    // the body is over its size limit (413)
	RateLimited  Kind = "rate_limited" // too many requests (429)
	Unavailable  Kind = "unavailable"  // try again later (503)
)

// Error is an error of a known kind with a message safe to show a client.
type Error struct {
	Kind    Kind
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, fault.NotFound) style checks work through the Kind.
func (e *Error) Is(target error) bool {
	var k kindError
	if errors.As(target, &k) {
		return Kind(k) == e.Kind
	}
	return false
}

type kindError Kind

func (k kindError) Error() string { return string(k) }

// Of returns a sentinel that matches, with errors.Is, every error of kind k.
func Of(k Kind) error { return kindError(k) }

// New returns an error of kind k with a client-safe message.
func New(k Kind, message string) error { return &Error{Kind: k, Message: message} }

// KindOf reports the kind of err and a message safe to show a client, and
// false when err carries none. Errors that say the database cannot serve
// right now (down, unreachable, read-only, out of disk or connections) are
// of kind Unavailable with a generic message.
func KindOf(err error) (Kind, string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind, e.Message, true
	}
	var v *Validation
	if errors.As(err, &v) {
		return Invalid, v.Error(), true
	}
	// An error type of a domain's own that reports its kind through Is.
	for _, k := range kinds {
		if errors.Is(err, Of(k)) {
			return k, err.Error(), true
		}
	}
	if databaseUnavailable(err) {
		return Unavailable, msgDatabaseUnavailable, true
	}
	return "", "", false
}

// RetryAfter returns err asking the client to wait d before trying again
// (httpx sends it as the Retry-After header). err keeps its kind and still
// matches, with errors.Is, everything it matched.
func RetryAfter(err error, d time.Duration) error { return &retryAfter{err: err, after: d} }

// RetryAfterOf returns how long err asks the client to wait, and false when
// it asks nothing.
func RetryAfterOf(err error) (time.Duration, bool) {
	var r *retryAfter
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}

type retryAfter struct {
	err   error
	after time.Duration
}

func (r *retryAfter) Error() string { return r.err.Error() }
func (r *retryAfter) Unwrap() error { return r.err }

var kinds = []Kind{Invalid, Malformed, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, RateLimited, Unavailable}

// FieldError names one invalid field and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Validation collects every invalid field of one input; it is of kind Invalid.
type Validation struct {
	Fields []FieldError
}

// Add records that field is invalid, with a message for the client.
func (v *Validation) Add(field, message string) {
	v.Fields = append(v.Fields, FieldError{Field: field, Message: message})
}

// Check records message for field when ok is false.
func (v *Validation) Check(ok bool, field, message string) {
	if !ok {
		v.Add(field, message)
	}
}

// Err returns v as an error when it holds at least one field, else nil.
func (v *Validation) Err() error {
	if v == nil || len(v.Fields) == 0 {
		return nil
	}
	return v
}

func (v *Validation) Error() string {
	parts := make([]string, len(v.Fields))
	for i, f := range v.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}
