// Package idempotency keeps, in Postgres, the first answer to each request
// that carries an idempotency key, so that a retry on any replica replays it
// instead of doing the change again.
//
// It knows nothing of HTTP: httpx's middleware reads the key and the body,
// claims the key here and replays what Replay returns; a domain stores its
// answer with StoreCreated in the transaction that makes its change.
//
// A claim on a key is a lease, renewed while the request runs (Hold): when
// the replica or its connection dies before the answer is stored, a retry
// after the lease (10 s by default) runs the request again. An answer stored
// in the same transaction as the change commits exactly when the change
// does, so a retry either replays that answer or finds nothing done.
package idempotency

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/idempotency/internal/idempotencydb"
)

// MaxAnswerBytes bounds a stored answer; larger answers are not stored, and
// a retry of their request runs it again.
const MaxAnswerBytes = 256 << 10

// statusCreated is HTTP's 201 Created, the status StoreCreated stores; the
// number is the protocol's, spelled here so this package needs no net/http.
const statusCreated = 201

var (
	// ErrTaken is returned by Claim when the key is held by a live claim or
	// already answered: Replay tells which.
	ErrTaken = errors.New("idempotency key taken")

	errKeyReused   = fault.New(fault.Invalid, "this Idempotency-Key was already used with a different request")
	errKeyInFlight = fault.New(fault.Conflict, "a request with this Idempotency-Key is still being processed; retry shortly")
	errLeaseLost   = fault.New(fault.Conflict, "a retry with this Idempotency-Key took over this request; its answer is the one that counts")
)

// Store is the key store on one pool.
type Store struct {
	q      *idempotencydb.Queries
	logger *slog.Logger
	now    func() time.Time
	lease  time.Duration
}

// Config tunes the store; zero values take the defaults.
type Config struct {
	// Lease is how long a claim on a key outlives its holder (default 10 s).
	Lease time.Duration
}

// New returns the key store on pool.
func New(pool *pgxpool.Pool, logger *slog.Logger, cfg Config) *Store {
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Second
	}
	return &Store{q: idempotencydb.New(pool), logger: logger, now: time.Now, lease: cfg.Lease}
}

// Claim is a request's hold on its key. Carry it in the request's context
// (WithClaim) so that StoreCreated can store the answer in the handler's
// transaction.
type Claim struct {
	user uuid.UUID
	key  string
	id   uuid.UUID
}

// Answer is a stored answer: an HTTP status, its content type and body.
type Answer struct {
	Status      int
	ContentType string
	Body        []byte
}

// Claim claims key for user's request whose fingerprint is fp (a hash of
// what makes the request the same request), or takes over a claim whose
// lease ran out without an answer for the same request. It returns ErrTaken
// when the key is held by a live claim or answered, or when it was used for
// another request; Replay then tells the caller what to answer.
func (s *Store) Claim(ctx context.Context, user uuid.UUID, key string, fp []byte) (*Claim, error) {
	c := &Claim{user: user, key: key, id: uuid.New()}
	_, err := s.q.ClaimKey(ctx, idempotencydb.ClaimKeyParams{UserID: user, Key: key, Fingerprint: fp, Claim: &c.id, LeaseSecs: s.lease.Seconds()})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrTaken
	}
	if err != nil {
		return nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	return c, nil
}

// Replay returns the stored answer to user's request with key and
// fingerprint fp. It returns an error of kind Invalid when the key was used
// with another request, and of kind Conflict with a RetryAfter (the rest of
// the holder's lease) when the key is held without an answer yet.
func (s *Store) Replay(ctx context.Context, user uuid.UUID, key string, fp []byte) (Answer, error) {
	row, err := s.q.GetKey(ctx, idempotencydb.GetKeyParams{UserID: user, Key: key})
	if errors.Is(err, pgx.ErrNoRows) { // released between the claim and this read
		return Answer{}, fault.RetryAfter(errKeyInFlight, time.Second)
	}
	if err != nil {
		return Answer{}, fmt.Errorf("read idempotency key: %w", err)
	}
	if !bytes.Equal(row.Fingerprint, fp) {
		return Answer{}, errKeyReused
	}
	if row.CompletedAt == nil || row.Status == nil {
		// Held by a live claim: retry when its lease would run out.
		return Answer{}, fault.RetryAfter(errKeyInFlight, time.Duration(row.LeaseLeftSecs*float64(time.Second)))
	}
	a := Answer{Status: int(*row.Status), Body: row.Body}
	if row.ContentType != nil {
		a.ContentType = *row.ContentType
	}
	return a, nil
}

// Hold renews c's lease every third of a lease until ctx is cancelled,
// logging failed renewals to logger; run it while the request runs.
func (s *Store) Hold(ctx context.Context, c *Claim, logger *slog.Logger) {
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
			logger.Warn("renew idempotency key", "err", err)
		}
	}
}

// Complete stores a as the answer to c's request, unless an answer is
// already stored (by StoreCreated in the handler's transaction) or the
// claim was taken over: then it does nothing.
func (s *Store) Complete(ctx context.Context, c *Claim, a Answer) error {
	if _, err := complete(ctx, s.q, c, a); err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	return nil
}

// Release frees c's key unless it was answered, so that a retry runs the
// request again.
func (s *Store) Release(ctx context.Context, c *Claim) error {
	if err := s.q.ReleaseKey(ctx, idempotencydb.ReleaseKeyParams{UserID: c.user, Key: c.key, Claim: &c.id}); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

type claimKey struct{}

// WithClaim returns ctx carrying c, for StoreCreated.
func WithClaim(ctx context.Context, c *Claim) context.Context {
	return context.WithValue(ctx, claimKey{}, c)
}

// StoreCreated stores, in tx, 201 Created with v as the answer to the
// request of ctx when it carries a claim (WithClaim); otherwise it does
// nothing. Call it in the transaction that makes the change, with the value
// the handler then writes as JSON with 201: the change and its answer then
// commit together, and a retry replays the answer. It returns an error of
// kind Conflict, which must roll the change back, when a retry took the key
// over after this request's lease ran out.
func StoreCreated(ctx context.Context, tx pgx.Tx, v any) error {
	c, ok := ctx.Value(claimKey{}).(*Claim)
	if !ok {
		return nil
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode idempotent answer: %w", err)
	}
	if body.Len() > MaxAnswerBytes {
		return nil
	}
	n, err := complete(ctx, idempotencydb.New(tx), c, Answer{Status: statusCreated, ContentType: "application/json", Body: body.Bytes()})
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	if n == 0 {
		return errLeaseLost
	}
	return nil
}

// complete stores a for c's claim and returns how many keys it answered
// (0: already answered or taken over).
func complete(ctx context.Context, q *idempotencydb.Queries, c *Claim, a Answer) (int64, error) {
	status := int16(a.Status)
	return q.CompleteKey(ctx, idempotencydb.CompleteKeyParams{
		UserID: c.user, Key: c.key, Claim: &c.id, Status: &status, ContentType: &a.ContentType, Body: a.Body})
}

// Run deletes keys older than two days every hour until ctx is cancelled.
func (s *Store) Run(ctx context.Context) error {
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
