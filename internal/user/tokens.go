package user

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/user/internal/userdb"
)

// Tokens checks bearer tokens; it is the identity.Authenticator of every
// request and socket. It is apart from Service because it needs nothing
// but the database: notify checks tokens with it, and Service, whose
// sign-out closes sockets through notify, is built after notify.
type Tokens struct {
	q *userdb.Queries
}

// NewTokens returns the token checker.
func NewTokens(pool *pgxpool.Pool) *Tokens { return &Tokens{q: userdb.New(pool)} }

// Authenticate returns the principal a token belongs to. It reads Postgres
// on every call, so a revocation on any replica takes effect at once. It
// returns ErrInvalidToken for an unknown, expired or revoked token.
func (t *Tokens) Authenticate(ctx context.Context, token string) (identity.Principal, error) {
	if len(token) == 0 || len(token) > 128 {
		return identity.Principal{}, ErrInvalidToken
	}
	h := tokenHash(token)
	row, err := t.q.Authenticate(ctx, h)
	if errors.Is(err, pgx.ErrNoRows) {
		return identity.Principal{}, ErrInvalidToken
	}
	if err != nil {
		return identity.Principal{}, fmt.Errorf("check token: %w", err)
	}
	return identity.Principal{UserID: row.ID, Role: identity.Role(row.Role), TokenHash: h}, nil
}

// Invalid returns those of tokens that no longer authenticate anyone
// (unknown, expired or revoked), checking them all in one query: a
// replica re-checks the tokens of all its sockets this way.
func (t *Tokens) Invalid(ctx context.Context, tokens []string) ([]string, error) {
	hashes := make([][]byte, len(tokens))
	for i, tok := range tokens {
		hashes[i] = tokenHash(tok)
	}
	valid, err := t.q.ValidTokens(ctx, hashes)
	if err != nil {
		return nil, fmt.Errorf("check %d tokens: %w", len(tokens), err)
	}
	ok := make(map[string]bool, len(valid))
	for _, h := range valid {
		ok[string(h)] = true
	}
	var out []string
	for i, tok := range tokens {
		if !ok[string(hashes[i])] {
			out = append(out, tok)
		}
	}
	return out, nil
}
