package httpx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx/internal/idempotencydb"
	"github.com/lastmile/lastmile/internal/identity"
)

// Idempotency replays the first answer to a POST that carries an
// Idempotency-Key header: the same key and body from the same user gets
// the same status and body and creates nothing new; the same key with
// another body gets 422. Keys are kept at least 24 hours. It stores answers
// in Postgres, so a retry may land on any replica.
type Idempotency struct {
	q      *idempotencydb.Queries
	logger *slog.Logger
	now    func() time.Time
}

// NewIdempotency returns the middleware's store on pool.
func NewIdempotency(pool *pgxpool.Pool, logger *slog.Logger) *Idempotency {
	return &Idempotency{q: idempotencydb.New(pool), logger: logger, now: time.Now}
}

var (
	errKeyReused   = fault.New(fault.Invalid, "this Idempotency-Key was already used with a different request")
	errKeyInFlight = fault.New(fault.Conflict, "a request with this Idempotency-Key is still being processed; retry shortly")
	errKeyTooLong  = fault.New(fault.Malformed, "Idempotency-Key must be 1 to 255 printable ASCII characters")
)

// maxReplayBytes bounds a stored answer; larger answers are not stored.
const maxReplayBytes = 256 << 10

// Middleware wraps handlers behind RequireAuth.
func (s *Idempotency) Middleware(next http.Handler) http.Handler {
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
		_, err = s.q.ClaimKey(ctx, idempotencydb.ClaimKeyParams{UserID: p.UserID, Key: key, Fingerprint: fp})
		if errors.Is(err, pgx.ErrNoRows) { // someone holds the key already
			s.replay(w, r, p, key, fp)
			return
		}
		if err != nil {
			Error(w, r, err)
			return
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		completed := false
		defer func() {
			if completed {
				return
			}
			// The handler failed or panicked: free the key so a retry runs again.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := s.q.ReleaseKey(ctx, idempotencydb.ReleaseKeyParams{UserID: p.UserID, Key: key}); err != nil {
				Logger(ctx).Warn("release idempotency key", "err", err)
			}
		}()
		next.ServeHTTP(rec, r)
		if rec.status >= 500 || rec.overflow {
			return
		}
		ct := rec.Header().Get("Content-Type")
		status := int16(rec.status)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.q.CompleteKey(cctx, idempotencydb.CompleteKeyParams{UserID: p.UserID, Key: key, Status: &status, ContentType: &ct, Body: rec.body.Bytes()}); err != nil {
			Logger(ctx).Warn("store idempotent answer", "err", err)
			return
		}
		completed = true
	})
}

func (s *Idempotency) replay(w http.ResponseWriter, r *http.Request, p identity.Principal, key string, fp []byte) {
	row, err := s.q.GetKey(r.Context(), idempotencydb.GetKeyParams{UserID: p.UserID, Key: key})
	if errors.Is(err, pgx.ErrNoRows) { // released between our claim and this read
		Error(w, r, fault.RetryAfter(errKeyInFlight, time.Second))
		return
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	if !bytes.Equal(row.Fingerprint, fp) {
		Error(w, r, errKeyReused)
		return
	}
	if row.CompletedAt == nil || row.Status == nil {
		Error(w, r, fault.RetryAfter(errKeyInFlight, time.Second))
		return
	}
	if row.ContentType != nil && *row.ContentType != "" {
		w.Header().Set("Content-Type", *row.ContentType)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(int(*row.Status))
	_, _ = w.Write(row.Body)
}

// Run deletes keys older than two days every hour until ctx is cancelled.
func (s *Idempotency) Run(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := s.q.DeleteOldKeys(ctx, s.now().Add(-48*time.Hour)); err != nil && ctx.Err() == nil {
				s.logger.Warn("delete old idempotency keys", "err", err)
			}
		}
	}
}

// recorder passes a response through and keeps a copy of it.
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
	if r.body.Len()+len(b) > maxReplayBytes {
		r.overflow = true
	} else {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}
