package notify

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/notify/internal/notifydb"
	"github.com/lastmile/lastmile/internal/postgres"
)

// Push design. An important event (a kind in Config.PushKinds) gets one
// push_outbox row per live subscription of its user, in the transaction
// that appends it, due Config.PushDelay later. A replica
// whose socket writes the event deletes those rows (in batches), so a user
// with an open socket on any replica is not pushed. After the delay a
// worker on any replica claims the due rows (SKIP LOCKED, with a lease so
// that a crash mid-send only delays it) and pushes them: 404/410 deletes
// the subscription, other failures retry with exponential backoff.

// Pusher sends one push message to one subscription. It returns an error
// wrapping ErrPushGone when the subscription no longer exists (it is then
// deleted), one wrapping ErrPushRejected when retrying cannot help (the
// push is dropped), and any other error to be retried later. Web Push is
// the default; FCM or APNs can be added behind this interface.
type Pusher interface {
	Push(ctx context.Context, sub PushSubscription, payload []byte) error
}

// Push errors a Pusher returns.
var (
	ErrPushGone     = errors.New("the push subscription no longer exists")
	ErrPushRejected = errors.New("the push service rejected the message")
)

// PushSubscription is where and how to push to one browser or device.
type PushSubscription struct {
	Endpoint string
	// P256dh and Auth are the subscription's keys (base64url), for Web Push.
	P256dh string
	Auth   string
}

// maxPushPayload keeps the JSON of one push within what one Web Push
// record holds (4096 bytes less encryption overhead); a bigger event is
// pushed without its data.
const maxPushPayload = 3000

// pushPayload is what a push carries: the event as the socket sends it.
func pushPayload(r notifydb.ClaimPushesRow) []byte {
	at := r.At.UTC()
	b := encode(wireMessage{Type: "event", Seq: r.Seq, Kind: r.Kind, At: &at, Data: r.Data})
	if len(b) > maxPushPayload {
		b = encode(wireMessage{Type: "event", Seq: r.Seq, Kind: r.Kind, At: &at})
	}
	return b
}

// eventRef names one stored event.
type eventRef struct {
	user uuid.UUID
	seq  int64
}

// ack reports that a push-marked event reached a socket, so it is not
// pushed. A full queue drops the report (the user may then get a push as
// well), and counts it.
func (s *Service) ack(user uuid.UUID, seq int64) {
	select {
	case s.acks <- eventRef{user, seq}:
	default:
		s.m.acksDropped.Inc()
	}
}

// ackLoop deletes the outbox rows of delivered events, in batches.
func (s *Service) ackLoop(ctx context.Context) error {
	const batch = 500
	for {
		var first eventRef
		select {
		case <-ctx.Done():
			return nil
		case first = <-s.acks:
		}
		users, seqs := []uuid.UUID{first.user}, []int64{first.seq}
	drain:
		for len(users) < batch {
			select {
			case r := <-s.acks:
				users, seqs = append(users, r.user), append(seqs, r.seq)
			default:
				break drain
			}
		}
		if _, err := s.q.DeleteDeliveredPushes(ctx, notifydb.DeleteDeliveredPushesParams{UserIds: users, Seqs: seqs}); err != nil && ctx.Err() == nil {
			s.logger.Warn("cancel pushes of delivered events", "count", len(users), "err", err)
		}
	}
}

// pushLoop sends due pushes until ctx is cancelled.
func (s *Service) pushLoop(ctx context.Context) error {
	return every(ctx, s.cfg.PushPoll, func(ctx context.Context) {
		for s.pushDue(ctx) {
		}
	})
}

// pushLease is how long a claimed push is held by the replica sending it.
const pushLease = time.Minute

// pushDue sends one batch of due pushes and reports whether the batch was
// full (there may be more).
func (s *Service) pushDue(ctx context.Context) bool {
	const batch = 50
	now := s.now()
	rows, err := s.q.ClaimPushes(ctx, notifydb.ClaimPushesParams{LeaseUntil: now.Add(pushLease), Now: now, Max: batch})
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("claim due pushes", "err", err)
		}
		return false
	}
	var g errgroup.Group
	g.SetLimit(8)
	for _, r := range rows {
		g.Go(func() error {
			s.pushOne(ctx, r)
			return nil
		})
	}
	_ = g.Wait()
	return len(rows) == batch && ctx.Err() == nil
}

func (s *Service) pushOne(ctx context.Context, r notifydb.ClaimPushesRow) {
	sub := PushSubscription{Endpoint: r.Endpoint, P256dh: r.P256dh, Auth: r.Auth}
	sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.pusher.Push(sendCtx, sub, pushPayload(r))
	cancel()
	if ctx.Err() != nil {
		return // shutting down; the lease runs out and it is tried again
	}
	var dbErr error
	switch {
	case err == nil:
		s.m.pushes.WithLabelValues("sent").Inc()
		dbErr = s.q.DeletePush(ctx, r.ID)
	case errors.Is(err, ErrPushGone):
		s.m.pushes.WithLabelValues("gone").Inc()
		s.logger.Info("push subscription gone; deleting it", "subscription_id", r.SubscriptionID, "err", err)
		dbErr = s.q.DeletePushSubscriptionByID(ctx, r.SubscriptionID)
	case errors.Is(err, ErrPushRejected):
		s.m.pushes.WithLabelValues("rejected").Inc()
		s.logger.Warn("push rejected; dropping it", "subscription_id", r.SubscriptionID, "kind", r.Kind, "err", err)
		dbErr = s.q.DeletePush(ctx, r.ID)
	case int(r.Attempts) >= s.cfg.PushAttempts:
		s.m.pushes.WithLabelValues("gave_up").Inc()
		s.logger.Warn("push failed too often; dropping it", "subscription_id", r.SubscriptionID, "attempts", r.Attempts, "err", err)
		dbErr = s.q.DeletePush(ctx, r.ID)
	default:
		s.m.pushes.WithLabelValues("retry").Inc()
		delay := min(s.cfg.PushRetry<<(r.Attempts-1), 10*time.Minute)
		s.logger.Info("push failed; retrying", "subscription_id", r.SubscriptionID, "attempts", r.Attempts, "in", delay, "err", err)
		dbErr = s.q.RetryPush(ctx, notifydb.RetryPushParams{ID: r.ID, DueAt: s.now().Add(delay)})
	}
	if dbErr != nil && ctx.Err() == nil {
		s.logger.Warn("record push result", "subscription_id", r.SubscriptionID, "err", dbErr)
	}
}

// vapidKeys is the server's VAPID key pair, base64url without padding.
type vapidKeys struct {
	public, private string
}

// vapidKeys returns the VAPID keys, creating them on first use. Replicas
// racing to create them agree: the first insert wins and all read it back.
func (s *Service) vapidKeys(ctx context.Context) (vapidKeys, error) {
	s.vapidMu.Lock()
	defer s.vapidMu.Unlock()
	if s.vapid != nil {
		return *s.vapid, nil
	}
	row, err := s.q.GetVAPIDKeys(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		priv, pub, genErr := webpush.GenerateVAPIDKeys()
		if genErr != nil {
			return vapidKeys{}, fmt.Errorf("generate VAPID keys: %w", genErr)
		}
		if err := s.q.InsertVAPIDKeys(ctx, notifydb.InsertVAPIDKeysParams{PublicKey: pub, PrivateKey: priv}); err != nil {
			return vapidKeys{}, fmt.Errorf("store VAPID keys: %w", err)
		}
		row, err = s.q.GetVAPIDKeys(ctx)
	}
	if err != nil {
		return vapidKeys{}, fmt.Errorf("read VAPID keys: %w", err)
	}
	s.vapid = &vapidKeys{public: row.PublicKey, private: row.PrivateKey}
	return *s.vapid, nil
}

// VAPIDPublicKey returns the key browsers pass to pushManager.subscribe as
// applicationServerKey (base64url).
func (s *Service) VAPIDPublicKey(ctx context.Context) (string, error) {
	k, err := s.vapidKeys(ctx)
	return k.public, err
}

// webPusher sends Web Push (RFC 8030) with aes128gcm encryption (RFC 8291)
// and VAPID (RFC 8292), through github.com/SherClockHolmes/webpush-go.
type webPusher struct {
	svc     *Service
	client  *http.Client
	subject string
	ttl     int
}

func newWebPusher(s *Service) *webPusher {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !s.cfg.AllowInsecurePush {
		dialer.Control = refusePrivateAddresses
	}
	transport := &http.Transport{
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	// webpush-go adds "mailto:" unless the subject is an https: URL.
	subject := strings.TrimPrefix(s.cfg.PushSubject, "mailto:")
	return &webPusher{
		svc:     s,
		client:  &http.Client{Transport: transport, Timeout: 30 * time.Second},
		subject: subject,
		ttl:     int(s.cfg.PushTTL / time.Second),
	}
}

func (p *webPusher) Push(ctx context.Context, sub PushSubscription, payload []byte) error {
	keys, err := p.svc.vapidKeys(ctx)
	if err != nil {
		return err
	}
	resp, err := webpush.SendNotificationWithContext(ctx, payload,
		&webpush.Subscription{Endpoint: sub.Endpoint, Keys: webpush.Keys{Auth: sub.Auth, P256dh: sub.P256dh}},
		&webpush.Options{
			HTTPClient:      p.client,
			Subscriber:      p.subject,
			TTL:             p.ttl,
			Urgency:         webpush.UrgencyHigh,
			VAPIDPublicKey:  keys.public,
			VAPIDPrivateKey: keys.private,
		})
	if err != nil {
		if errors.Is(err, ErrPushRejected) {
			return err
		}
		return fmt.Errorf("web push to %s: %w", hostOf(sub.Endpoint), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return fmt.Errorf("web push to %s answered %d: %w", hostOf(sub.Endpoint), code, ErrPushGone)
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return fmt.Errorf("web push to %s answered %d: %s", hostOf(sub.Endpoint), code, strings.TrimSpace(string(body)))
	default:
		return fmt.Errorf("web push to %s answered %d: %s: %w", hostOf(sub.Endpoint), code, strings.TrimSpace(string(body)), ErrPushRejected)
	}
}

func hostOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "an unparsable endpoint"
	}
	return u.Host
}

// SubscriptionInput is a browser's PushSubscription as its toJSON() gives it.
type SubscriptionInput struct {
	Endpoint string `json:"endpoint"`
	// ExpirationTime is in milliseconds since 1970, or null.
	ExpirationTime *float64 `json:"expirationTime"`
	Keys           struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// Subscription is a stored push subscription as its owner sees it.
type Subscription struct {
	Endpoint       string     `json:"endpoint"`
	ExpirationTime *time.Time `json:"expiration_time,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
}

// maxSubscriptions is how many push subscriptions one user keeps; the
// oldest go first.
const maxSubscriptions = 10

// Subscribe stores a push subscription for userID (replacing one with the
// same endpoint). It returns a fault.Validation naming every bad field.
func (s *Service) Subscribe(ctx context.Context, userID uuid.UUID, in SubscriptionInput) (Subscription, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	expires, err := s.checkSubscription(in, now)
	if err != nil {
		return Subscription{}, err
	}
	row, err := postgres.InTxValue(ctx, s.pool, func(tx pgx.Tx) (notifydb.UpsertPushSubscriptionRow, error) {
		q := s.q.WithTx(tx)
		if err := q.DeleteForeignPushSubscription(ctx, notifydb.DeleteForeignPushSubscriptionParams{Endpoint: in.Endpoint, UserID: userID}); err != nil {
			return notifydb.UpsertPushSubscriptionRow{}, err
		}
		row, err := q.UpsertPushSubscription(ctx, notifydb.UpsertPushSubscriptionParams{
			UserID: userID, Endpoint: in.Endpoint, P256dh: in.Keys.P256dh, Auth: in.Keys.Auth, ExpiresAt: expires, CreatedAt: now,
		})
		if err != nil {
			return notifydb.UpsertPushSubscriptionRow{}, err
		}
		return row, q.TrimPushSubscriptions(ctx, notifydb.TrimPushSubscriptionsParams{UserID: userID, Keep: maxSubscriptions})
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("store push subscription of user %s: %w", userID, err)
	}
	return Subscription{Endpoint: row.Endpoint, ExpirationTime: row.ExpiresAt, CreatedAt: row.CreatedAt.UTC()}, nil
}

// checkSubscription names every bad field of in, and returns when it
// expires (nil: never).
func (s *Service) checkSubscription(in SubscriptionInput, now time.Time) (*time.Time, error) {
	var v fault.Validation
	s.checkEndpoint(&v, in.Endpoint)
	if b, err := decodeKey(in.Keys.P256dh); err != nil {
		v.Add("keys.p256dh", "must be base64url")
	} else if _, err := ecdh.P256().NewPublicKey(b); err != nil {
		v.Add("keys.p256dh", "must be an uncompressed P-256 public key (65 bytes)")
	}
	if b, err := decodeKey(in.Keys.Auth); err != nil || len(b) != 16 {
		v.Add("keys.auth", "must be 16 bytes, base64url")
	}
	var expires *time.Time
	if in.ExpirationTime != nil {
		t := time.UnixMilli(int64(*in.ExpirationTime)).UTC()
		v.Check(t.After(now), "expirationTime", "must be in the future")
		expires = &t
	}
	return expires, v.Err()
}

func (s *Service) checkEndpoint(v *fault.Validation, endpoint string) {
	if endpoint == "" {
		v.Add("endpoint", "is required")
		return
	}
	u, err := url.Parse(endpoint)
	switch {
	case len(endpoint) > 2048:
		v.Add("endpoint", "must be at most 2048 characters")
	case err != nil || u.Host == "" || u.User != nil:
		v.Add("endpoint", "must be an absolute https URL")
	case u.Scheme != "https" && !(s.cfg.AllowInsecurePush && u.Scheme == "http"):
		v.Add("endpoint", "must be an https URL")
	case !s.cfg.AllowInsecurePush && isSpecialHost(u.Hostname()):
		v.Add("endpoint", "must be a public push service, not a private or special-purpose address")
	}
}

// isSpecialHost reports whether host is an IP literal in a special-purpose
// range (names are judged when dialled, after DNS).
func isSpecialHost(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && specialRange(a) != ""
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// Unsubscribe deletes userID's subscription for endpoint; one that is not
// there, or is another user's, is left alone.
func (s *Service) Unsubscribe(ctx context.Context, userID uuid.UUID, endpoint string) error {
	if endpoint == "" {
		return &fault.Validation{Fields: []fault.FieldError{{Field: "endpoint", Message: "is required"}}}
	}
	if _, err := s.q.DeletePushSubscription(ctx, notifydb.DeletePushSubscriptionParams{UserID: userID, Endpoint: endpoint}); err != nil {
		return fmt.Errorf("delete push subscription of user %s: %w", userID, err)
	}
	return nil
}
