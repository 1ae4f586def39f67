package httpx

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct client", "203.0.113.7:5000", "", "203.0.113.7"},
		{"forged header from an untrusted peer is ignored", "203.0.113.7:5000", "1.2.3.4", "203.0.113.7"},
		{"behind the load balancer", "10.0.0.2:5000", "198.51.100.9", "198.51.100.9"},
		{"client-supplied hops left of the real one are ignored", "10.0.0.2:5000", "1.2.3.4, 198.51.100.9", "198.51.100.9"},
		{"two trusted proxies", "10.0.0.2:5000", "198.51.100.9, 10.0.0.3", "198.51.100.9"},
		{"garbage header", "10.0.0.2:5000", "not-an-ip", "10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			h := ClientAddr(trusted)(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = Client(r) }))
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tt.want {
				t.Fatalf("client = %q, want %q", got, tt.want)
			}
		})
	}
}
