package main

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// Signing out closes the user's open sockets, end to end.
func TestSignOutClosesSockets(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	r := signUp(t, s, "rider", "R")
	ws := r.connect("")
	r.must(204, "POST", "/api/v1/auth/logout", nil)
	deadline := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-ws.Messages():
		case <-deadline:
			t.Fatal("the socket was still open 5 s after sign-out")
		}
	}
	if st := websocket.CloseStatus(ws.Err()); st != websocket.StatusNormalClosure {
		t.Fatalf("socket closed with %v (%v), want 1000 signed out", st, ws.Err())
	}
	r.must(401, "GET", "/api/v1/me", nil)
}
