// Package httpxtest holds what tests of several domains need to drive
// httpx as a handler would.
package httpxtest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
)

// DecodeBody runs body through httpx.Decode into v as a handler would, and
// fails tb unless a refusal is a client error (a fault kind, never a 500).
// It reports whether body was accepted.
func DecodeBody(tb testing.TB, body []byte, v any) bool {
	tb.Helper()
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if err := httpx.Decode(r, v); err != nil {
		if _, _, ok := fault.KindOf(err); !ok {
			tb.Fatalf("decoding %q: %v is not a client error", body, err)
		}
		return false
	}
	return true
}
