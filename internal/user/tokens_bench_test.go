package user

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// BenchmarkInvalidTokens10k is one replica's token re-check at 10,000
// sockets: one query per ping interval. BenchmarkAuthenticateEach10k is
// the same check as each socket used to make it, one query per token.
func BenchmarkInvalidTokens10k(b *testing.B) {
	t, tokens := tokens10k(b)
	b.ResetTimer()
	for b.Loop() {
		invalid, err := t.Invalid(context.Background(), tokens)
		if err != nil || len(invalid) != 0 {
			b.Fatalf("Invalid = %d tokens, %v; want none", len(invalid), err)
		}
	}
}

func BenchmarkAuthenticateEach10k(b *testing.B) {
	t, tokens := tokens10k(b)
	b.ResetTimer()
	for b.Loop() {
		for _, tok := range tokens {
			if _, err := t.Authenticate(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func tokens10k(b *testing.B) (*Tokens, []string) {
	b.Helper()
	pool := pgtest.New(b)
	ctx := context.Background()
	var user string
	if err := pool.QueryRow(ctx, "INSERT INTO users (email, password_hash, name, role) VALUES ('b@example.com', 'x', 'B', 'rider') RETURNING id").Scan(&user); err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, 10000)
	rows := make([][]any, len(tokens))
	for i := range tokens {
		tokens[i] = fmt.Sprintf("token-%06d", i)
		rows[i] = []any{tokenHash(tokens[i]), user}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"auth_tokens"}, []string{"hash", "user_id", "expires_at"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) { return append(rows[i], time.Now().Add(time.Hour)), nil })); err != nil {
		b.Fatal(err)
	}
	return NewTokens(pool), tokens
}
