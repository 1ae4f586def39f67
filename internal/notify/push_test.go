package notify

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/notify/notifytest"
)

// browser is a fake browser push subscription: its keys, and a push
// service endpoint that records what it is sent.
type browser struct {
	priv *ecdh.PrivateKey
	auth []byte
	srv  *httptest.Server

	mu       sync.Mutex
	statuses []int // answers to give, in order; then 201
	got      []pushRequest
	arrived  chan struct{}
}

type pushRequest struct {
	header http.Header
	body   []byte
}

func newBrowser(tb testing.TB, statuses ...int) *browser {
	tb.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	b := &browser{priv: priv, auth: make([]byte, 16), statuses: statuses, arrived: make(chan struct{}, 100)}
	rand.Read(b.auth)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, pushRequest{header: r.Header.Clone(), body: body})
		status := http.StatusCreated
		if len(b.statuses) > 0 {
			status, b.statuses = b.statuses[0], b.statuses[1:]
		}
		b.mu.Unlock()
		w.WriteHeader(status)
		b.arrived <- struct{}{}
	}))
	tb.Cleanup(b.srv.Close)
	return b
}

func (b *browser) endpoint() string { return b.srv.URL + "/push/abc" }

// subscription is the JSON PushSubscription.toJSON() gives.
func (b *browser) subscription() string {
	enc := base64.RawURLEncoding.EncodeToString
	return fmt.Sprintf(`{"endpoint": %q, "expirationTime": null, "keys": {"p256dh": %q, "auth": %q}}`,
		b.endpoint(), enc(b.priv.PublicKey().Bytes()), enc(b.auth))
}

func (b *browser) wait(tb testing.TB) pushRequest {
	tb.Helper()
	select {
	case <-b.arrived:
	case <-time.After(10 * time.Second):
		tb.Fatal("no push arrived")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got[len(b.got)-1]
}

// decrypt opens an aes128gcm Web Push body (RFC 8291) as a browser would.
func (b *browser) decrypt(tb testing.TB, body []byte) []byte {
	tb.Helper()
	if len(body) < 21 {
		tb.Fatalf("push body of %d bytes", len(body))
	}
	salt, idLen := body[:16], int(body[20])
	_ = binary.BigEndian.Uint32(body[16:20]) // record size
	serverKey, ciphertext := body[21:21+idLen], body[21+idLen:]
	pub, err := ecdh.P256().NewPublicKey(serverKey)
	if err != nil {
		tb.Fatal(err)
	}
	shared, err := b.priv.ECDH(pub)
	if err != nil {
		tb.Fatal(err)
	}
	info := "WebPush: info\x00" + string(b.priv.PublicKey().Bytes()) + string(serverKey)
	ikm, _ := hkdf.Key(sha256.New, shared, b.auth, info, 32)
	cek, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	block, _ := aes.NewCipher(cek)
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		tb.Fatalf("decrypt push: %v", err)
	}
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 || plain[len(plain)-1] != 2 {
		tb.Fatal("push record lacks its final-record delimiter")
	}
	return plain[:len(plain)-1]
}

// checkVAPID verifies the VAPID Authorization header (RFC 8292) against
// the server's public key.
func checkVAPID(tb testing.TB, h http.Header, publicKey, endpoint string) {
	tb.Helper()
	auth := h.Get("Authorization")
	tok, key, ok := strings.Cut(strings.TrimPrefix(auth, "vapid t="), ", k=")
	if !strings.HasPrefix(auth, "vapid t=") || !ok {
		tb.Fatalf("Authorization %q is not VAPID", auth)
	}
	if key != publicKey {
		tb.Fatalf("VAPID k=%s, want the server's key %s", key, publicKey)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(key)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		tb.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		tb.Fatalf("VAPID token %q is not a JWT", tok)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if len(sig) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		tb.Fatal("VAPID signature does not verify")
	}
	claimsJSON, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(claimsJSON, &claims); err != nil {
		tb.Fatal(err)
	}
	if !strings.HasPrefix(endpoint, claims.Aud+"/") || claims.Exp < time.Now().Unix() || claims.Sub != "mailto:operations@lastmile.invalid" {
		tb.Fatalf("VAPID claims %+v for endpoint %s", claims, endpoint)
	}
}

func pushConfig() Config {
	cfg := testConfig()
	cfg.PushDelay = 50 * time.Millisecond
	cfg.PushRetry = 20 * time.Millisecond
	return cfg
}

func TestPushSubscriptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, pushConfig())
	u, other := e.user(t, identity.RoleRider), e.user(t, identity.RoleRider)
	b := newBrowser(t)
	count := func() (n int) {
		e.pool.QueryRow(context.Background(), "SELECT count(*) FROM push_subscriptions WHERE user_id = $1", u).Scan(&n)
		return n
	}

	var sub Subscription
	if resp := a.do(t, "POST", "/api/v1/push-subscriptions", u, b.subscription(), &sub); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	if sub.Endpoint != b.endpoint() || count() != 1 {
		t.Fatalf("stored %+v, %d rows", sub, count())
	}
	// The same endpoint again replaces it.
	if resp := a.do(t, "POST", "/api/v1/push-subscriptions", u, b.subscription(), nil); resp.StatusCode != http.StatusCreated || count() != 1 {
		t.Fatalf("second POST = %d with %d rows, want 201 and one row", resp.StatusCode, count())
	}

	var problem httpx.Problem
	bad := `{"endpoint": "ftp://x", "keys": {"p256dh": "AAAA", "auth": "c2hvcnQ"}, "expirationTime": 1000}`
	if resp := a.do(t, "POST", "/api/v1/push-subscriptions", u, bad, &problem); resp.StatusCode != http.StatusUnprocessableEntity || len(problem.Errors) != 4 {
		t.Fatalf("bad subscription = %d %+v, want 422 naming endpoint, both keys and expirationTime", resp.StatusCode, problem)
	}
	if resp := a.do(t, "POST", "/api/v1/push-subscriptions", u, `{"endpoint": "https://x", "extra": 1}`, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field = %d, want 400", resp.StatusCode)
	}

	// Another user cannot delete it; its owner can, by query or by body.
	if resp := a.do(t, "DELETE", "/api/v1/push-subscriptions?endpoint="+b.endpoint(), other, "", nil); resp.StatusCode != http.StatusNoContent || count() != 1 {
		t.Fatalf("DELETE by another user = %d, %d rows left", resp.StatusCode, count())
	}
	if resp := a.do(t, "DELETE", "/api/v1/push-subscriptions", u, fmt.Sprintf(`{"endpoint": %q}`, b.endpoint()), nil); resp.StatusCode != http.StatusNoContent || count() != 0 {
		t.Fatalf("DELETE = %d, %d rows left", resp.StatusCode, count())
	}
	if resp := a.do(t, "DELETE", "/api/v1/push-subscriptions", u, "", nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("DELETE without endpoint = %d, want 422", resp.StatusCode)
	}
	if resp := a.do(t, "POST", "/api/v1/push-subscriptions", uuid.Nil, b.subscription(), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST without token = %d", resp.StatusCode)
	}
}

func TestImportantEventIsPushedToAnOfflineUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, pushConfig())
	u := e.user(t, identity.RoleRider)
	b := newBrowser(t)
	a.do(t, "POST", "/api/v1/push-subscriptions", u, b.subscription(), nil)
	var key struct {
		PublicKey string `json:"public_key"`
	}
	a.do(t, "GET", "/api/v1/push-subscriptions/vapid-public-key", u, "", &key)

	e.append(t, a.svc, u, "trip.updated", nil) // not important: never pushed
	ev := e.append(t, a.svc, u, "ride.matched", map[string]string{"driver": "Ravi"})
	req := b.wait(t)
	checkVAPID(t, req.header, key.PublicKey, b.endpoint())
	if req.header.Get("Content-Encoding") != "aes128gcm" || req.header.Get("TTL") != "3600" || req.header.Get("Urgency") != "high" {
		t.Fatalf("push headers %v", req.header)
	}
	var m notifytest.Message
	if err := json.Unmarshal(b.decrypt(t, req.body), &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "event" || m.Seq != ev.Seq || m.Kind != "ride.matched" || string(m.Data) != `{"driver":"Ravi"}` {
		t.Fatalf("push carries %+v", m)
	}
	eventually(t, 5*time.Second, "the outbox to empty", func() bool { return outboxRows(t, e) == 0 })
	if got := value(t, a.svc.m.pushes.WithLabelValues("sent")); got != 1 {
		t.Errorf("pushes sent = %v, want 1", got)
	}
}

func TestEventTakenBySocketIsNotPushed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := pushConfig()
	cfg.PushDelay = 2 * time.Second
	a, other := e.replica(t, cfg), e.replica(t, cfg)
	u := e.user(t, identity.RoleRider)
	b := newBrowser(t)
	a.do(t, "POST", "/api/v1/push-subscriptions", u, b.subscription(), nil)
	c := other.connect(t, u, "")

	ev := e.append(t, a.svc, u, "ride.cancelled", nil)
	c.ExpectSeqs(ev.Seq)
	// Once the socket's replica cancels it, nothing can push it.
	eventually(t, 5*time.Second, "the delivered push to be cancelled", func() bool { return outboxRows(t, e) == 0 })
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.got) != 0 {
		t.Fatalf("%d pushes sent for an event a socket took", len(b.got))
	}
}

func TestFailedPushesAreRetriedAndGoneSubscriptionsDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, pushConfig())
	u := e.user(t, identity.RoleRider)
	b := newBrowser(t, http.StatusServiceUnavailable, http.StatusCreated, http.StatusGone)
	a.do(t, "POST", "/api/v1/push-subscriptions", u, b.subscription(), nil)

	e.append(t, a.svc, u, "ride.expired", nil)
	b.wait(t) // 503
	b.wait(t) // retried: 201
	eventually(t, 5*time.Second, "the push to be done", func() bool { return outboxRows(t, e) == 0 })

	e.append(t, a.svc, u, "driver.arrived", nil)
	b.wait(t) // 410
	eventually(t, 5*time.Second, "the gone subscription to be deleted", func() bool {
		var n int
		e.pool.QueryRow(context.Background(), "SELECT count(*) FROM push_subscriptions").Scan(&n)
		return n == 0
	})
	for result, want := range map[string]float64{"retry": 1, "sent": 1, "gone": 1} {
		if got := value(t, a.svc.m.pushes.WithLabelValues(result)); got != want {
			t.Errorf("pushes %s = %v, want %v", result, got, want)
		}
	}
}

func TestReplicasAgreeOnVAPIDKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const replicas = 4
	svcs := make([]*Service, replicas)
	for i := range svcs {
		svcs[i] = e.replica(t, testConfig()).svc
	}
	keys := make([]string, replicas)
	var wg sync.WaitGroup
	for i, s := range svcs {
		wg.Go(func() {
			k, err := s.VAPIDPublicKey(context.Background())
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys {
		if k == "" || k != keys[0] {
			t.Fatalf("replicas hold keys %v, want one key", keys)
		}
	}
}

func TestPushRefusesEverySpecialPurposeRange(t *testing.T) {
	// Each range: its first and last address, and one the probe named.
	for _, sp := range specialPurpose {
		t.Run(sp.prefix.String(), func(t *testing.T) {
			first, last := sp.prefix.Masked().Addr(), lastOf(sp.prefix)
			for _, a := range []netip.Addr{first, last} {
				addr := netip.AddrPortFrom(a, 443).String()
				if err := refusePrivateAddresses("tcp", addr, nil); !errors.Is(err, ErrPushRejected) {
					t.Errorf("%s (%s) allowed: %v", addr, sp.name, err)
				}
			}
		})
	}
	for _, addr := range []string{
		"100.100.100.200:80",        // a cloud metadata service in 100.64/10
		"169.254.169.254:80",        // the usual metadata address
		"198.18.0.1:443",            // benchmarking
		"192.0.0.170:443",           // NAT64 discovery
		"0.1.2.3:443",               // this network
		"250.1.2.3:443",             // reserved
		"255.255.255.255:443",       // broadcast
		"[64:ff9b::a00:1]:443",      // NAT64 to 10.0.0.1
		"[2002:a00:1::1]:443",       // 6to4 of 10.0.0.1
		"[2001:0:4136:e378::1]:443", // Teredo
		"[::ffff:192.168.1.1]:443",  // IPv4-mapped private
		"[::a00:1]:443",             // IPv4-compatible, outside 2000::/3
		"[fe80::1%eth0]:443",        // link local with a zone
		"[fd00::1]:443",             // unique local
		"[ff02::1]:443",             // multicast
	} {
		if err := refusePrivateAddresses("tcp", addr, nil); !errors.Is(err, ErrPushRejected) {
			t.Errorf("%s allowed: %v", addr, err)
		}
	}
	for _, addr := range []string{"142.250.70.46:443", "1.1.1.1:443", "[2607:f8b0:4004:c07::64]:443", "[2a00:1450:4001:80b::200e]:443", "100.128.0.1:443", "198.20.0.1:443"} {
		if err := refusePrivateAddresses("tcp", addr, nil); err != nil {
			t.Errorf("public address %s refused: %v", addr, err)
		}
	}
}

// lastOf returns the last address of p.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func outboxRows(tb testing.TB, e *env) int {
	tb.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM push_outbox").Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}
