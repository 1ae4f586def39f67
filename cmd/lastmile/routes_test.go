package main

import (
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// routeRule says who may call a route: public routes need no token;
// others name the roles allowed (every other role gets 403). owned names
// the route's path parameters that must belong to the caller: another
// user's id answers 404, like an unknown one.
type routeRule struct {
	public bool
	roles  []string
	owned  bool
}

var (
	roleAny      = []string{"rider", "driver", "operator"}
	roleRider    = []string{"rider"}
	roleDriver   = []string{"driver"}
	roleOperator = []string{"operator"}
)

// routeRules classifies every route the router serves. A route added to
// the router but not here fails TestEveryRouteIsGuarded: decide whether
// it is public, and which roles may call it, before it ships.
var routeRules = map[string]routeRule{
	"GET /healthz":                                               {public: true},
	"GET /readyz":                                                {public: true},
	"GET /api/v1/openapi.json":                                   {public: true},
	"GET /api/docs":                                              {public: true},
	"GET /api/docs/docs.js":                                      {public: true},
	"GET /api/docs/docs.css":                                     {public: true},
	"POST /api/v1/auth/signup":                                   {public: true},
	"POST /api/v1/auth/login":                                    {public: true},
	"GET /api/v1/stations":                                       {public: true},
	"GET /api/v1/stations/nearby":                                {public: true},
	"GET /api/v1/stations/{id}":                                  {public: true},
	"POST /api/v1/auth/logout":                                   {roles: roleAny},
	"GET /api/v1/me":                                             {roles: roleAny},
	"PATCH /api/v1/me":                                           {roles: roleAny},
	"GET /api/v1/ws":                                             {roles: roleAny},
	"GET /api/v1/events":                                         {roles: roleAny},
	"POST /api/v1/push-subscriptions":                            {roles: roleAny},
	"DELETE /api/v1/push-subscriptions":                          {roles: roleAny},
	"GET /api/v1/push-subscriptions/vapid-public-key":            {roles: roleAny},
	"POST /api/v1/stations":                                      {roles: roleOperator},
	"PATCH /api/v1/stations/{id}":                                {roles: roleOperator},
	"DELETE /api/v1/stations/{id}":                               {roles: roleOperator},
	"POST /api/v1/stations/{id}/areas":                           {roles: roleOperator},
	"PATCH /api/v1/stations/{id}/areas/{area_id}":                {roles: roleOperator},
	"DELETE /api/v1/stations/{id}/areas/{area_id}":               {roles: roleOperator},
	"GET /api/v1/drivers/positions":                              {roles: roleOperator},
	"GET /api/v1/ride-requests/stats":                            {roles: roleOperator},
	"POST /api/v1/stations/import":                               {roles: roleOperator},
	"POST /api/v1/location":                                      {roles: roleDriver},
	"POST /api/v1/routes":                                        {roles: roleDriver},
	"GET /api/v1/routes/current":                                 {roles: roleDriver},
	"GET /api/v1/routes/{route_id}":                              {roles: []string{"driver", "operator"}, owned: true},
	"POST /api/v1/routes/{route_id}/complete":                    {roles: roleDriver, owned: true},
	"POST /api/v1/routes/{route_id}/cancel":                      {roles: roleDriver, owned: true},
	"POST /api/v1/ride-requests":                                 {roles: roleRider},
	"GET /api/v1/ride-requests":                                  {roles: []string{"rider", "operator"}},
	"GET /api/v1/ride-requests/{request_id}":                     {roles: []string{"rider", "operator"}, owned: true},
	"POST /api/v1/ride-requests/{request_id}/cancel":             {roles: []string{"rider", "operator"}, owned: true},
	"GET /api/v1/trips":                                          {roles: roleAny},
	"GET /api/v1/trips/{trip_id}":                                {roles: roleAny, owned: true},
	"POST /api/v1/trips/{trip_id}/arrived":                       {roles: roleDriver, owned: true},
	"POST /api/v1/trips/{trip_id}/start":                         {roles: roleDriver, owned: true},
	"POST /api/v1/trips/{trip_id}/riders/{rider_id}/picked-up":   {roles: roleDriver, owned: true},
	"POST /api/v1/trips/{trip_id}/riders/{rider_id}/no-show":     {roles: roleDriver, owned: true},
	"POST /api/v1/trips/{trip_id}/riders/{rider_id}/dropped-off": {roles: roleDriver, owned: true},

	// The web app's pages and files.
	"GET /":              {public: true},
	"GET /signin":        {public: true},
	"GET /signup":        {public: true},
	"GET /rider":         {public: true},
	"GET /driver":        {public: true},
	"GET /operator":      {public: true},
	"GET /assets/{file}": {public: true},
	"GET /sw.js":         {public: true},
}

// servedRoutes walks the router itself: every method and pattern it serves.
func servedRoutes(tb testing.TB) map[string][]string {
	tb.Helper()
	logger := slog.New(slog.DiscardHandler)
	a, err := newApp(testConfig(), pgtest.New(tb), logger, prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	methods := map[string][]string{} // pattern → methods
	err = chi.Walk(a.router(&health{}, prometheus.NewRegistry(), logger), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		methods[route] = append(methods[route], method)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return methods
}

var paramPattern = regexp.MustCompile(`\{[a-z_]+\}`)

// fill puts ids into a route pattern: those in ids, a fresh UUID for other
// *_id parameters, and a real station and area otherwise.
func fill(pattern string, ids map[string]string) string {
	return paramPattern.ReplaceAllStringFunc(pattern, func(p string) string {
		name := strings.Trim(p, "{}")
		if v, ok := ids[name]; ok {
			return v
		}
		switch name {
		case "id":
			return hsrStation
		case "area_id":
			return areaA
		}
		return uuid.NewString()
	})
}

// TestEveryRouteIsGuarded walks every route of the router against a real
// server: without a token each non-public route answers 401; each role it
// does not allow answers 403; another user's ids answer 404 and change
// nothing; a method the path does not serve answers 405 with Allow.
func TestEveryRouteIsGuarded(t *testing.T) {
	served := servedRoutes(t)
	var keys []string
	for pattern, methods := range served {
		for _, m := range methods {
			keys = append(keys, m+" "+pattern)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := routeRules[k]; !ok {
			t.Errorf("route %s is not in routeRules: say whether it is public and which roles may call it", k)
		}
	}
	for k := range routeRules {
		if !slices.Contains(keys, k) {
			t.Errorf("routeRules lists %s, which the router does not serve", k)
		}
	}
	if len(keys) < 30 {
		t.Fatalf("only %d routes walked: the walk is broken", len(keys))
	}

	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	users := map[string]*client{
		"rider":    signUp(t, s, "rider", "Rider"),
		"driver":   signUp(t, s, "driver", "Driver"),
		"operator": operator(t, s, url),
	}
	anon := &client{tb: t, base: s.URL}

	t.Run("no token", func(t *testing.T) {
		for _, k := range keys {
			method, pattern, _ := strings.Cut(k, " ")
			code := anon.do(method, fill(pattern, nil), nil, nil)
			switch {
			case routeRules[k].public && (code == 401 || code == 403):
				t.Errorf("%s is public but answers %d without a token", k, code)
			case !routeRules[k].public && code != 401:
				t.Errorf("%s without a token = %d, want 401", k, code)
			}
		}
	})

	t.Run("other roles", func(t *testing.T) {
		for _, k := range keys {
			rule := routeRules[k]
			method, pattern, _ := strings.Cut(k, " ")
			for role, c := range users {
				if rule.public || slices.Contains(rule.roles, role) {
					continue
				}
				if code := c.do(method, fill(pattern, nil), nil, nil); code != 403 {
					t.Errorf("%s as %s = %d, want 403", k, role, code)
				}
			}
		}
	})

	t.Run("wrong method", func(t *testing.T) {
		for pattern := range served {
			path := fill(pattern, nil)
			// The methods served at this path, by any pattern that matches
			// it (/stations/nearby is also /stations/{id}).
			var methods []string
			for p, ms := range served {
				if regexp.MustCompile("^" + paramPattern.ReplaceAllString(p, "[^/]+") + "$").MatchString(path) {
					methods = append(methods, ms...)
				}
			}
			allow := allowedOrder(methods)
			for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
				if slices.Contains(methods, m) {
					continue
				}
				req, _ := http.NewRequest(m, s.URL+path, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 405 || resp.Header.Get("Allow") != allow {
					t.Errorf("%s %s = %d Allow %q, want 405 Allow %q", m, path, resp.StatusCode, resp.Header.Get("Allow"), allow)
				}
			}
		}
	})

	// Another user's ids: a second driver and a second rider, each with
	// the role the route allows, ask for the first pair's route, request
	// and trip.
	t.Run("another user's ids", func(t *testing.T) {
		d, r := users["driver"], users["rider"]
		tripID, requestID := matchOne(t, s, d, r)
		route := d.must(200, "GET", "/api/v1/routes/current", nil)
		ids := map[string]string{"trip_id": tripID, "request_id": requestID, "route_id": route["id"].(string), "rider_id": r.id}
		others := map[string]*client{"driver": signUp(t, s, "driver", "OtherDriver"), "rider": signUp(t, s, "rider", "OtherRider")}
		for _, k := range keys {
			rule := routeRules[k]
			if !rule.owned {
				continue
			}
			method, pattern, _ := strings.Cut(k, " ")
			for _, role := range rule.roles {
				other, ok := others[role]
				if !ok {
					continue // operators may see everyone's
				}
				if code := other.do(method, fill(pattern, ids), nil, nil); code != 404 {
					t.Errorf("%s as another %s = %d, want 404", k, role, code)
				}
			}
		}
		// Nothing changed for the owners.
		if got := d.must(200, "GET", "/api/v1/routes/"+ids["route_id"], nil); got["status"] != "active" {
			t.Errorf("the owner's route is %v after strangers' calls", got["status"])
		}
		if got := r.must(200, "GET", "/api/v1/ride-requests/"+requestID, nil); got["status"] != "matched" {
			t.Errorf("the owner's request is %v after strangers' calls", got["status"])
		}
		if got := d.must(200, "GET", "/api/v1/trips/"+tripID, nil); got["status"] != "scheduled" || got["arrived_at"] != nil {
			t.Errorf("the owner's trip is %v (arrived %v) after strangers' calls", got["status"], got["arrived_at"])
		}
	})
}

// allowedOrder is the Allow header the server sends for methods; a path
// that serves GET also serves HEAD.
func allowedOrder(methods []string) string {
	if slices.Contains(methods, "GET") {
		methods = append(slices.Clone(methods), "HEAD")
	}
	var out []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		if slices.Contains(methods, m) {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

// Every GET route answers HEAD too (RFC 9110): the same status and
// headers, no body; and a 405 lists HEAD beside GET.
func TestHeadIsServedWhereGetIs(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	for _, path := range []string{"/", "/healthz", "/api/v1/stations", "/api/v1/openapi.json"} {
		get, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		get.Body.Close()
		head, err := http.Head(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(head.Body)
		head.Body.Close()
		if head.StatusCode != get.StatusCode || len(body) != 0 || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s = %d %q with %d body bytes; GET = %d %q", path, head.StatusCode, head.Header.Get("Content-Type"), len(body), get.StatusCode, get.Header.Get("Content-Type"))
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, s.URL+"/api/v1/stations", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || !strings.HasPrefix(resp.Header.Get("Allow"), "GET, HEAD") {
		t.Errorf("DELETE /api/v1/stations = %d Allow %q, want 405 with GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
