package httpx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
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
//
// A claim on a key is a lease, renewed while the request runs: when the
// replica or its connection dies before the answer is stored, a retry
// after the lease (Lease, 10 s by default) runs the request again. A
// handler whose change is in Postgres stores its answer in the same
// transaction (StoreCreated), so a change is committed exactly when its
// answer is, and a retry either replays that answer or finds nothing done.
type Idempotency struct {
	q      *idempotencydb.Queries
	logger *slog.Logger
	now    func() time.Time
	lease  time.Duration
}

// IdempotencyConfig tunes the middleware; zero values take the defaults.
type IdempotencyConfig struct {
	// Lease is how long a claim on a key outlives its holder (default 10 s).
	Lease time.Duration
}

// NewIdempotency returns the middleware's store on pool.
func NewIdempotency(pool *pgxpool.Pool, logger *slog.Logger, cfg IdempotencyConfig) *Idempotency {
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Second
	}
	return &Idempotency{q: idempotencydb.New(pool), logger: logger, now: time.Now, lease: cfg.Lease}
}

var (
	errKeyReused   = fault.New(fault.Invalid, "this Idempotency-Key was already used with a different request")
	errKeyInFlight = fault.New(fault.Conflict, "a request with this Idempotency-Key is still being processed; retry shortly")
	errKeyTooLong  = fault.New(fault.Malformed, "Idempotency-Key must be 1 to 255 printable ASCII characters")
	errLeaseLost   = fault.New(fault.Conflict, "a retry with this Idempotency-Key took over this request; its answer is the one that counts")
)

// maxReplayBytes bounds a stored answer; larger answers are not stored.
const maxReplayBytes = 256 << 10

// claim is a request's hold on its key, carried in the request context so
// that StoreCreated can store the answer in the handler's transaction.
type claim struct {
	user uuid.UUID
	key  string
	id   uuid.UUID
}

type claimKey struct{}

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
		c := &claim{user: p.UserID, key: key, id: uuid.New()}
		_, err = s.q.ClaimKey(ctx, idempotencydb.ClaimKeyParams{UserID: p.UserID, Key: key, Fingerprint: fp, Claim: &c.id, LeaseSecs: s.lease.Seconds()})
		if errors.Is(err, pgx.ErrNoRows) { // held by a live claim, or answered
			s.replay(w, r, p, key, fp)
			return
		}
		if err != nil {
			Error(w, r, fmt.Errorf("claim idempotency key: %w", err))
			return
		}

		// Renew the lease while the handler runs; stop before answering.
		renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			s.renew(renewCtx, c)
		}()
		stop := func() {
			stopRenew()
			<-renewed
		}

		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		completed := false
		defer func() {
			stop()
			if completed {
				return
			}
			// The handler failed or panicked: free the key so a retry runs
			// again (should this fail too, the lease runs out instead). An
			// answer stored in the handler's transaction is kept.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := s.q.ReleaseKey(ctx, idempotencydb.ReleaseKeyParams{UserID: p.UserID, Key: key, Claim: &c.id}); err != nil {
				Logger(ctx).Warn("release idempotency key", "err", err)
			}
		}()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, claimKey{}, c)))
		stop()
		if rec.status >= 500 || rec.overflow {
			return
		}
		// A no-op when the handler stored its answer with its change.
		ct := rec.Header().Get("Content-Type")
		status := int16(rec.status)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := s.q.CompleteKey(cctx, idempotencydb.CompleteKeyParams{UserID: p.UserID, Key: key, Claim: &c.id, Status: &status, ContentType: &ct, Body: rec.body.Bytes()}); err != nil {
			Logger(ctx).Warn("store idempotent answer", "err", err)
			return
		}
		completed = true
	})
}

// renew extends c's lease every third of a lease until ctx is cancelled.
func (s *Idempotency) renew(ctx context.Context, c *claim) {
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, s.lease/3)
		_, err := s.q.RenewKey(rctx, idempotencydb.RenewKeyParams{UserID: c.user, Key: c.key, Claim: &c.id, LeaseSecs: s.lease.Seconds()})
		cancel()
		if err != nil && ctx.Err() == nil {
			Logger(ctx).Warn("renew idempotency key", "err", err)
		}
	}
}

// StoreCreated stores, in tx, 201 Created with v as the answer to the
// request of ctx when it carries an Idempotency-Key; otherwise it does
// nothing. Call it in the transaction that makes the change, with the value
// the handler then writes with JSON(w, http.StatusCreated, v): the change
// and its answer then commit together, and a retry replays the answer.
// It returns an error of kind Conflict, which must roll the change back,
// when a retry took the key over after this request's lease ran out.
func StoreCreated(ctx context.Context, tx pgx.Tx, v any) error {
	c, ok := ctx.Value(claimKey{}).(*claim)
	if !ok {
		return nil
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode idempotent answer: %w", err)
	}
	if body.Len() > maxReplayBytes {
		return nil
	}
	status, ct := int16(http.StatusCreated), "application/json"
	n, err := idempotencydb.New(tx).CompleteKey(ctx, idempotencydb.CompleteKeyParams{
		UserID: c.user, Key: c.key, Claim: &c.id, Status: &status, ContentType: &ct, Body: body.Bytes()})
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	if n == 0 {
		return errLeaseLost
	}
	return nil
}

func (s *Idempotency) replay(w http.ResponseWriter, r *http.Request, p identity.Principal, key string, fp []byte) {
	row, err := s.q.GetKey(r.Context(), idempotencydb.GetKeyParams{UserID: p.UserID, Key: key})
	if errors.Is(err, pgx.ErrNoRows) { // released between our claim and this read
		Error(w, r, fault.RetryAfter(errKeyInFlight, time.Second))
		return
	}
	if err != nil {
		Error(w, r, fmt.Errorf("read idempotency key: %w", err))
		return
	}
	if !bytes.Equal(row.Fingerprint, fp) {
		Error(w, r, errKeyReused)
		return
	}
	if row.CompletedAt == nil || row.Status == nil {
		// Held by a live claim: retry when its lease would run out.
		Error(w, r, fault.RetryAfter(errKeyInFlight, time.Duration(row.LeaseLeftSecs*float64(time.Second))))
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
