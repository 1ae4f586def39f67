package notify

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
)

// The socket's message decoder: any text yields a type or a reason.
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(`{"type":"location","lat":12.9,"lng":77.6}`))
	f.Add([]byte(`{"type":"ping"}`))
	f.Add([]byte(`{"type":""}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(`{"type":{"nested":true}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := decodeEnvelope(data)
		if err == nil && env.Type == "" {
			t.Fatalf("%q decoded without a type", data)
		}
		if err != nil && err.Error() == "" {
			t.Fatalf("%q refused without a reason", data)
		}
	})
}

// Push subscription bodies: what is accepted has an https endpoint that is
// not a special-purpose IP literal, a P-256 key and a 16-byte secret.
func FuzzSubscriptionBody(f *testing.F) {
	f.Add([]byte(`{"endpoint":"https://fcm.googleapis.com/fcm/send/abc","expirationTime":null,"keys":{"p256dh":"BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM","auth":"tBHItJI5svbpez7KI4CCXg"}}`))
	f.Add([]byte(`{"endpoint":"https://100.100.100.200/push","keys":{"p256dh":"x","auth":"y"}}`))
	f.Add([]byte(`{"endpoint":"http://[64:ff9b::a9fe:a9fe]/","expirationTime":1e300}`))
	s := &Service{}
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var in SubscriptionInput
		if err := httpx.Decode(r, &in); err != nil {
			if _, _, ok := fault.KindOf(err); !ok {
				t.Fatalf("decoding %q: %v is not a client error", body, err)
			}
			return
		}
		if _, err := s.checkSubscription(in, now); err != nil {
			return
		}
		u, err := url.Parse(in.Endpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || len(in.Endpoint) > 2048 {
			t.Fatalf("endpoint %q accepted", in.Endpoint)
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && specialRange(a) != "" {
			t.Fatalf("endpoint %q at a special-purpose address accepted", in.Endpoint)
		}
	})
}
