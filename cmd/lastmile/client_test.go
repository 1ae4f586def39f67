package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/notify/notifytest"
)

var emailSeq atomic.Int64

// client is one user of a running server, speaking its REST API.
type client struct {
	tb    testing.TB
	base  string
	token string
	id    string
	role  string
}

// signUp creates a rider or driver with a unique email.
func signUp(tb testing.TB, s *server, role, name string) *client {
	tb.Helper()
	c := &client{tb: tb, base: s.URL, role: role}
	email := fmt.Sprintf("%s-%d-%d@example.com", strings.ToLower(name), time.Now().UnixNano(), emailSeq.Add(1))
	var sess struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if code := c.do("POST", "/api/v1/auth/signup", map[string]any{"email": email, "password": "long enough 1", "name": name, "role": role}, &sess); code != 201 {
		tb.Fatalf("sign up %s: %d", name, code)
	}
	c.token, c.id = sess.Token, sess.User.ID
	return c
}

// do sends a JSON request (body may be a string of raw JSON) and decodes
// the answer into out (a *map[string]any or a struct), returning the status.
func (c *client) do(method, path string, body, out any, headers ...string) int {
	c.tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			c.tb.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.tb.Fatalf("%s %s: %d, answer not JSON into %T: %v: %q", method, path, resp.StatusCode, out, err, raw)
		}
	}
	return resp.StatusCode
}

// must sends a request and fails the test unless the status is want.
func (c *client) must(want int, method, path string, body any) map[string]any {
	c.tb.Helper()
	var out map[string]any
	if code := c.do(method, path, body, &out); code != want {
		c.tb.Fatalf("%s %s = %d %v, want %d", method, path, code, out, want)
	}
	return out
}

// mustWithin repeats a request, which must change nothing until it
// succeeds, until it answers want, and fails the test after d: for rules
// that allow something once some time has passed.
func (c *client) mustWithin(d time.Duration, want int, method, path string, body any) map[string]any {
	c.tb.Helper()
	deadline := time.Now().Add(d)
	for {
		var out map[string]any
		code := c.do(method, path, body, &out)
		if code == want {
			return out
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("%s %s = %d %v for %s, want %d", method, path, code, out, d, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connect opens the client's WebSocket with the given query (e.g. "since=0").
func (c *client) connect(query string) *notifytest.Socket {
	c.tb.Helper()
	u := strings.Replace(c.base, "http", "ws", 1) + "/api/v1/ws"
	if query != "" {
		u += "?" + query
	}
	return notifytest.Dial(c.tb, u, http.Header{"Authorization": {"Bearer " + c.token}})
}
