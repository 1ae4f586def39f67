package httpx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A request whose client went away is not an internal error: it is
// recorded as 499, not 500, and is not logged as an error.
func TestErrorClientWentAway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	Error(w, r, fmt.Errorf("read user: %w", context.Canceled))
	if w.Code != StatusClientClosed {
		t.Fatalf("status = %d, want %d", w.Code, StatusClientClosed)
	}

	// A context.Canceled that is not the request's own (a component that
	// stopped while the client still waits) stays an internal error.
	r = httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
	w = httptest.NewRecorder()
	Error(w, r, errors.Join(errors.New("worker stopped"), context.Canceled))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", w.Code)
	}
}
