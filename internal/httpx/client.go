package httpx

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

const clientAddrKey ctxKey = iota + 200

// ClientAddr is middleware that records the address a request comes from:
// the connection's peer, or, when the peer is one of the trusted proxies
// (a load balancer), the nearest untrusted address in X-Forwarded-For.
// Forwarded headers from anyone else are ignored: they could be forged to
// dodge per-address limits.
func ClientAddr(trusted []netip.Prefix) func(http.Handler) http.Handler {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			addr := peer(r)
			if a, err := netip.ParseAddr(addr); err == nil && isTrusted(a) {
				hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
				for i := len(hops) - 1; i >= 0; i-- {
					hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
					if err != nil {
						break
					}
					addr = hop.Unmap().String()
					if !isTrusted(hop) {
						break
					}
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientAddrKey, addr)))
		})
	}
}

func peer(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Client returns the address ClientAddr recorded for r, or the peer's.
func Client(r *http.Request) string {
	if a, ok := r.Context().Value(clientAddrKey).(string); ok {
		return a
	}
	return peer(r)
}

// Timeout gives every request but those whose path is in long (WebSockets)
// a deadline, so a stuck database cannot hold a request and its
// connection forever.
func Timeout(d time.Duration, long ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, p := range long {
				if r.URL.Path == p {
					next.ServeHTTP(w, r)
					return
				}
			}
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}
