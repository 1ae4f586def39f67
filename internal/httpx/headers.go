package httpx

import "net/http"

// DefaultPolicy is the Content-Security-Policy of every answer that does not
// set its own: nothing may load and nobody may frame it. JSON needs nothing
// more; a handler that serves HTML replaces it with w.Header().Set.
const DefaultPolicy = "default-src 'none'; frame-ancestors 'none'"

// SecureHeaders is middleware that puts the standard protective headers on
// every answer, errors and 404s included: no MIME sniffing, no framing
// (X-Frame-Options for old browsers, frame-ancestors for new ones), no
// Referer leaking the path (which may hold ids) to other sites, and
// DefaultPolicy unless the handler sets its own policy.
func SecureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", DefaultPolicy)
		next.ServeHTTP(w, r)
	})
}
