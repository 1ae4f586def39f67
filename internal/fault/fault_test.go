package fault

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRetryAfterKeepsKindAndIdentity(t *testing.T) {
	sentinel := New(RateLimited, "slow down")
	err := fmt.Errorf("sign in: %w", RetryAfter(sentinel, 30*time.Second))
	if d, ok := RetryAfterOf(err); !ok || d != 30*time.Second {
		t.Fatalf("RetryAfterOf = %v, %v; want 30s", d, ok)
	}
	if !errors.Is(err, sentinel) || !errors.Is(err, Of(RateLimited)) {
		t.Fatal("a retry-after error no longer matches its sentinel or kind")
	}
	if k, msg, ok := KindOf(err); !ok || k != RateLimited || msg != "slow down" {
		t.Fatalf("KindOf = %v %q %v; want rate_limited and the message", k, msg, ok)
	}
	if _, ok := RetryAfterOf(sentinel); ok {
		t.Fatal("a plain fault asks for a wait")
	}
}
