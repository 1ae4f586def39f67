package user

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx/httpxtest"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/text"
)

// decodeBody runs body through httpx.Decode as a handler would.
var decodeBody = httpxtest.DecodeBody

// cleanName fails unless name is what text.Line lets through, within max.
func cleanName(t *testing.T, field, name string, max int) {
	t.Helper()
	if again, problem := text.Line(name); problem != "" || again != name || name == "" || text.Len(name) > max {
		t.Fatalf("%s %q accepted (%s)", field, name, problem)
	}
}

// Sign-up bodies: whatever arrives, a refusal is a client error, and what
// is accepted is a plain email, a clean name, an allowed password and role.
func FuzzSignUpBody(f *testing.F) {
	f.Add([]byte(`{"email":"asha@example.com","password":"metro ride 42","name":"Asha","role":"rider"}`))
	f.Add([]byte(`{"email":"x@[127.0.0.1]","password":"password","name":"A\u202eB","role":"operator"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in SignUpInput
		if !decodeBody(t, body, &in) {
			return
		}
		out, err := validSignUp(in, identity.RoleRider, identity.RoleDriver)
		if err != nil {
			if _, _, ok := fault.KindOf(err); !ok {
				t.Fatalf("validation error %v has no kind", err)
			}
			return
		}
		local, domain, ok := strings.Cut(out.Email, "@")
		if !ok || local == "" || !isPrintableASCII(out.Email) || isIP(domain) || !isHostName(domain) || out.Email != strings.ToLower(out.Email) {
			t.Fatalf("email %q accepted", out.Email)
		}
		cleanName(t, "name", out.Name, 100)
		if n := utf8.RuneCountInString(out.Password); n < 8 || n > 128 || strings.TrimSpace(out.Password) == "" || isCommonPassword(out.Password) {
			t.Fatalf("password %q accepted", out.Password)
		}
		if out.Role != identity.RoleRider && out.Role != identity.RoleDriver {
			t.Fatalf("role %q accepted at sign-up", out.Role)
		}
	})
}

// Sign-in bodies decode or are refused as client errors.
func FuzzSignInBody(f *testing.F) {
	f.Add([]byte(`{"email":"asha@example.com","password":"metro ride 42"}`))
	f.Add([]byte(`{"email":"asha@example.com","password":"x","admin":true}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		}
		decodeBody(t, body, &in)
	})
}

// Profile bodies: an accepted name is clean, an accepted phone matches the
// phone pattern.
func FuzzProfileBody(f *testing.F) {
	f.Add([]byte(`{"name":"Asha","phone":"+91 80 1234 5678"}`))
	f.Add([]byte(`{"name":"Ra\u200bvi","phone":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in ProfileInput
		if !decodeBody(t, body, &in) {
			return
		}
		out, phone, err := in.validate()
		if err != nil {
			return
		}
		if out.Name != nil {
			cleanName(t, "name", *out.Name, 100)
		}
		if phone != nil && !phonePattern.MatchString(*phone) {
			t.Fatalf("phone %q accepted", *phone)
		}
	})
}
