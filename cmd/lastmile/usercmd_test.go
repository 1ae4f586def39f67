package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestUserCreateOperatorThenSignIn(t *testing.T) {
	url := pgtest.URL(t)
	env := func(k string) string { return map[string]string{"DATABASE_URL": url}[k] }
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"lastmile", "user", "create", "--role", "operator", "--email", "Ops@Example.com", "--name", "Ops", "--log-format", "json"},
		env, strings.NewReader("operator secret 1\n"), &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "created operator ops@example.com") {
		t.Fatalf("user create = %v, %q %q", err, out.String(), errOut.String())
	}

	// No password on stdin: refused with a message that says how.
	err = run(context.Background(), []string{"lastmile", "user", "create", "--email", "x@example.com", "--name", "X"}, env, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "stdin") {
		t.Fatalf("empty stdin: %v, want an error about stdin", err)
	}
	// A password is never taken as a flag.
	err = run(context.Background(), []string{"lastmile", "user", "create", "--email", "x@example.com", "--name", "X", "--password", "p"}, env, strings.NewReader("pw123456\n"), &out, &errOut)
	if err == nil {
		t.Fatalf("--password was accepted")
	}

	s := startServer(t, url, nil)
	body, _ := json.Marshal(map[string]string{"email": "ops@example.com", "password": "operator secret 1"})
	resp, err := http.Post(s.URL+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sess struct {
		Token string `json:"token"`
		User  struct {
			Role string `json:"role"`
		} `json:"user"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sess); err != nil || resp.StatusCode != 200 || sess.User.Role != "operator" || sess.Token == "" {
		t.Fatalf("operator sign-in = %d %+v %v", resp.StatusCode, sess, err)
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+sess.Token)
	me, err := http.DefaultClient.Do(req)
	if err != nil || me.StatusCode != 200 {
		t.Fatalf("me with the operator token = %v %v", me.StatusCode, err)
	}
	me.Body.Close()
}
