package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// api speaks LastMile's public REST API. Calls are retried, with backoff,
// on network errors, 429 and 5xx answers (a replica killed or restarting,
// Postgres away); creating calls carry one Idempotency-Key across their
// retries so a retry never creates twice. Every failure is counted by kind.
type api struct {
	base  string
	http  *http.Client
	stats *stats
	// attempts is how many times a call is tried before it fails.
	attempts int
}

// apiError is an answer the caller must look at: its status and the
// problem's detail.
type apiError struct {
	Status int
	Detail string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Detail) }

// statusOf is the HTTP status of err, or 0 when err is not an answer.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// call options.
type callOpts struct {
	idempotent bool // send an Idempotency-Key, the same on every retry
}

// do sends one call and decodes a 2xx answer into out. Other answers come
// back as *apiError after the retries.
func (a *api) do(ctx context.Context, method, path, token string, body, out any, opts ...callOpts) error {
	var o callOpts
	for _, x := range opts {
		o.idempotent = o.idempotent || x.idempotent
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	key := ""
	if o.idempotent {
		key = uuid.NewString()
	}
	backoff := 200 * time.Millisecond
	var last error
	for attempt := 1; ; attempt++ {
		wait, err := a.once(ctx, method, path, token, key, payload, out)
		if err == nil {
			return nil
		}
		last = err
		if wait < 0 || attempt >= a.attempts || ctx.Err() != nil {
			return last
		}
		if wait == 0 {
			wait = backoff
			backoff = min(2*backoff, 5*time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return last
		case <-t.C:
		}
	}
}

// once tries a call once. wait is how long to wait before a retry (0: the
// caller's backoff), or negative when a retry cannot help.
func (a *api) once(parent context.Context, method, path, token, key string, payload []byte, out any) (wait time.Duration, err error) {
	// A call under way finishes (within its timeout) even when the run
	// ends: cutting it would leave the server a half-done request and the
	// report an error that is none; the retries do stop.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 15*time.Second)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return -1, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		if parent.Err() == nil { // not the run ending
			a.stats.errorf("http_network")
		}
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		a.stats.errorf("http_network")
		return 0, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil && len(b) > 0 {
			if err := json.Unmarshal(b, out); err != nil {
				a.stats.errorf("http_bad_answer")
				return -1, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
			}
		}
		return 0, nil
	}
	var problem struct {
		Detail string `json:"detail"`
		Title  string `json:"title"`
	}
	_ = json.Unmarshal(b, &problem)
	if problem.Detail == "" {
		problem.Detail = problem.Title
	}
	ae := &apiError{Status: resp.StatusCode, Detail: problem.Detail}
	// A 409 with Retry-After is an Idempotency-Key whose first request is
	// still running: wait for its answer like any other retry.
	inProgress := resp.StatusCode == http.StatusConflict && key != "" && resp.Header.Get("Retry-After") != ""
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 || inProgress:
		a.stats.errorf("http_%d", resp.StatusCode)
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			return min(time.Duration(s)*time.Second, 10*time.Second), ae
		}
		return 0, ae
	default:
		// 4xx: the caller decides whether that is an error (a 409 after a
		// retried action usually is not).
		return -1, ae
	}
}

// wsURL is the socket address for base (http → ws, https → wss).
func wsURL(base string) string {
	if rest, ok := strings.CutPrefix(base, "https://"); ok {
		return "wss://" + rest + "/api/v1/ws"
	}
	return "ws://" + strings.TrimPrefix(base, "http://") + "/api/v1/ws"
}
