package main

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// The sign-up and sign-in limits per client address are server flags: the
// defaults refuse the 11th attempt a minute from one address, and 0 turns
// a limit off (what `lastmile simulate` needs to sign up its population
// from one machine).
func TestLimitFlags(t *testing.T) {
	signUps := func(t *testing.T, s *server, n int) (codes []int) {
		c := &client{tb: t, base: s.URL}
		for i := range n {
			codes = append(codes, c.do("POST", "/api/v1/auth/signup", map[string]any{
				"email": fmt.Sprintf("limit-%d-%d@example.com", i, emailSeq.Add(1)), "password": "long enough 1", "name": "L", "role": "rider"}, nil))
		}
		return codes
	}
	signIns := func(t *testing.T, s *server, n int) (codes []int) {
		c := &client{tb: t, base: s.URL}
		for i := range n { // a different email each time: only the per-address limit can refuse
			codes = append(codes, c.do("POST", "/api/v1/auth/login", map[string]any{
				"email": fmt.Sprintf("nobody-%d@example.com", i), "password": "wrong password"}, nil))
		}
		return codes
	}
	t.Run("defaults refuse the 11th attempt from one address", func(t *testing.T) {
		// The limits count in fixed one-minute windows: attempts that
		// straddle a window's end are tried again on a fresh server.
		inOneWindow := func(attempts func() []int) ([]int, bool) {
			start := time.Now().Truncate(time.Minute)
			codes := attempts()
			return codes, time.Now().Truncate(time.Minute).Equal(start)
		}
		for try := 1; ; try++ {
			s := startServer(t, pgtest.URL(t), nil)
			ups, ok1 := inOneWindow(func() []int { return signUps(t, s, 11) })
			ins, ok2 := inOneWindow(func() []int { return signIns(t, s, 11) })
			if (!ok1 || !ok2) && try < 3 {
				continue
			}
			if ups[9] != 201 || ups[10] != 429 {
				t.Errorf("sign-ups = %v, want ten 201 then 429", ups)
			}
			if ins[9] != 401 || ins[10] != 429 {
				t.Errorf("sign-ins = %v, want ten 401 then 429", ins)
			}
			break
		}
	})
	t.Run("0 turns both off", func(t *testing.T) {
		s := startServer(t, pgtest.URL(t), map[string]string{"LASTMILE_SIGNUP_LIMIT": "0", "LASTMILE_SIGNIN_LIMIT": "0"})
		for i, code := range signUps(t, s, 12) {
			if code != 201 {
				t.Fatalf("sign-up %d = %d, want 201 with the limit off", i+1, code)
			}
		}
		for i, code := range signIns(t, s, 12) {
			if code != 401 {
				t.Fatalf("sign-in %d = %d, want 401 (never 429) with the limit off", i+1, code)
			}
		}
	})
	t.Run("a negative limit is refused at start", func(t *testing.T) {
		err := run(t.Context(), []string{"lastmile", "serve", "--addr", "127.0.0.1:0", "--signup-limit", "-1"},
			func(k string) string {
				if k == "DATABASE_URL" {
					return pgtest.URL(t)
				}
				return ""
			}, nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--signup-limit") {
			t.Fatalf("run = %v, want an error naming --signup-limit", err)
		}
	})
}
