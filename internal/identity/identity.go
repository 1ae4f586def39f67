// Package identity says who is calling: a user's role, the authenticated
// principal, how it travels in a context, and the interface that turns a
// token into a principal. It knows nothing of HTTP, so domains can use it.
package identity

import (
	"context"

	"github.com/google/uuid"
)

// Role is what a user may do: rider, driver or operator.
type Role string

// The roles.
const (
	RoleRider    Role = "rider"
	RoleDriver   Role = "driver"
	RoleOperator Role = "operator"
)

// Principal is an authenticated caller.
type Principal struct {
	UserID uuid.UUID
	Role   Role
	// TokenHash identifies the token used, so sign-out can revoke it.
	TokenHash []byte
}

// Authenticator turns a bearer token into the principal it belongs to. It
// returns an error of kind fault.Unauthorized for an unknown, expired or
// revoked token.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// PrincipalFrom returns the principal put in ctx by WithPrincipal.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}
