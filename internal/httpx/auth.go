package httpx

import (
	"errors"
	"net/http"
	"strings"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/identity"
)

var (
	errNoToken   = fault.New(fault.Unauthorized, "missing bearer token: send Authorization: Bearer <token>")
	errWrongRole = fault.New(fault.Forbidden, "your role may not do this")
)

// BearerToken returns the token of an "Authorization: Bearer" header, or of
// the access_token query parameter when allowQuery is set (for WebSockets,
// where a browser cannot set headers).
func BearerToken(r *http.Request, allowQuery bool) string {
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	if allowQuery {
		return r.URL.Query().Get("access_token")
	}
	return ""
}

// RequireAuth is middleware that answers 401 unless the request carries a
// valid bearer token, and puts the caller's Principal in the context.
func RequireAuth(auth identity.Authenticator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := BearerToken(r, false)
			if tok == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="lastmile"`)
				Error(w, r, errNoToken)
				return
			}
			p, err := auth.Authenticate(r.Context(), tok)
			if err != nil {
				if errors.Is(err, fault.Of(fault.Unauthorized)) {
					w.Header().Set("WWW-Authenticate", `Bearer realm="lastmile", error="invalid_token"`)
				}
				Error(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(identity.WithPrincipal(r.Context(), p)))
		})
	}
}

// Caller returns the authenticated caller, and an error of kind Forbidden
// unless its role is one of roles (any role when none are given). Handlers
// behind RequireAuth call it first: p, err := httpx.Caller(r, identity.RoleDriver).
func Caller(r *http.Request, roles ...identity.Role) (identity.Principal, error) {
	p, ok := identity.PrincipalFrom(r.Context())
	if !ok {
		return identity.Principal{}, errNoToken
	}
	if len(roles) == 0 {
		return p, nil
	}
	for _, role := range roles {
		if p.Role == role {
			return p, nil
		}
	}
	return p, errWrongRole
}
