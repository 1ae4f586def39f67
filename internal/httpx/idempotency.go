package httpx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/idempotency"
	"github.com/lastmile/lastmile/internal/identity"
)

var errKeyTooLong = fault.New(fault.Malformed, "Idempotency-Key must be 1 to 255 printable ASCII characters")

// Idempotent returns middleware that replays the first answer to a POST
// that carries an Idempotency-Key header: the same key and body from the
// same user gets the same status and body and creates nothing new; the same
// key with another body gets 422; while the first request runs, a retry
// gets 409 with Retry-After. Answers are kept in store (package
// idempotency), in Postgres, so a retry may land on any replica. A handler
// whose change is in Postgres stores its answer in the same transaction
// (idempotency.StoreCreated); the middleware stores any other answer below
// 500 after the handler returns, and frees the key after a 5xx or a panic.
// It wraps handlers behind RequireAuth.
func Idempotent(store *idempotency.Store) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Header.Get("Idempotency-Key")
			p, authed := identity.PrincipalFrom(r.Context())
			if key == "" || r.Method != http.MethodPost || !authed {
				next.ServeHTTP(w, r)
				return
			}
			if len(key) > 255 || strings.IndexFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
				Error(w, r, errKeyTooLong)
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
			if err != nil {
				Error(w, r, decodeError(err))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			h := sha256.New()
			io.WriteString(h, r.Method+" "+r.URL.Path+"\n")
			h.Write(body)
			fp := h.Sum(nil)

			ctx := r.Context()
			c, err := store.Claim(ctx, p.UserID, key, fp)
			if errors.Is(err, idempotency.ErrTaken) {
				replay(w, r, store, p, key, fp)
				return
			}
			if err != nil {
				Error(w, r, err)
				return
			}

			// Renew the lease while the handler runs; stop before answering.
			holdCtx, stopHold := context.WithCancel(context.WithoutCancel(ctx))
			held := make(chan struct{})
			go func() {
				defer close(held)
				store.Hold(holdCtx, c, Logger(ctx))
			}()
			stop := func() {
				stopHold()
				<-held
			}

			rec := &recorder{ResponseWriter: w, status: http.StatusOK}
			completed := false
			defer func() {
				stop()
				if completed {
					return
				}
				// The handler failed or panicked: free the key so a retry
				// runs again (should this fail too, the lease runs out
				// instead). An answer stored in the handler's transaction
				// is kept.
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := store.Release(ctx, c); err != nil {
					Logger(ctx).Warn("release idempotency key", "err", err)
				}
			}()
			next.ServeHTTP(rec, r.WithContext(idempotency.WithClaim(ctx, c)))
			stop()
			if rec.status >= 500 || rec.overflow {
				return
			}
			// A no-op when the handler stored its answer with its change.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			a := idempotency.Answer{Status: rec.status, ContentType: rec.Header().Get("Content-Type"), Body: rec.body.Bytes()}
			if err := store.Complete(cctx, c, a); err != nil {
				Logger(ctx).Warn("store idempotent answer", "err", err)
				return
			}
			completed = true
		})
	}
}

// replay writes the stored answer to p's request with key and fingerprint
// fp, or the reason there is none yet.
func replay(w http.ResponseWriter, r *http.Request, store *idempotency.Store, p identity.Principal, key string, fp []byte) {
	a, err := store.Replay(r.Context(), p.UserID, key, fp)
	if err != nil {
		Error(w, r, err)
		return
	}
	if a.ContentType != "" {
		w.Header().Set("Content-Type", a.ContentType)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

// recorder passes a response through and keeps a copy of it, up to
// idempotency.MaxAnswerBytes.
type recorder struct {
	http.ResponseWriter
	status   int
	body     bytes.Buffer
	overflow bool
	wrote    bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	if r.body.Len()+len(b) > idempotency.MaxAnswerBytes {
		r.overflow = true
	} else {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}
