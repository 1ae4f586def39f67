package notify

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// every runs its function at once, then once per interval, and returns
// when cancelled; the clock is synctest's, so the test takes no time.
func TestEveryRunsAtOnceThenEachIntervalUntilCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		var runs []time.Duration
		done := make(chan error)
		go func() {
			done <- every(ctx, time.Second, func(context.Context) { runs = append(runs, time.Since(start)) })
		}()
		time.Sleep(3500 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("every returned %v, want nil when cancelled", err)
		}
		if want := []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(runs, want) {
			t.Fatalf("ran at %v, want %v", runs, want)
		}
	})
}
