package driver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/text"
)

// Route bodies: a refusal is a client error; what is accepted has 1 to 20
// distinct stations, 1 to 8 seats and a clean vehicle of at most 100
// characters.
func FuzzRouteBody(f *testing.F) {
	f.Add([]byte(`{"station_ids":["silkboard","hsr"],"destination_area_id":"kudlu-gate","seats":3,"vehicle":"white Swift KA-01-AB-1234"}`))
	f.Add([]byte(`{"station_ids":["hsr","hsr"],"destination_area_id":"","seats":9,"vehicle":"\u202e"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var in RouteInput
		if err := httpx.Decode(r, &in); err != nil {
			if _, _, ok := fault.KindOf(err); !ok {
				t.Fatalf("decoding %q: %v is not a client error", body, err)
			}
			return
		}
		if err := in.validate(); err != nil {
			if _, _, ok := fault.KindOf(err); !ok {
				t.Fatalf("validation error %v has no kind", err)
			}
			return
		}
		if n := len(in.StationIDs); n < 1 || n > 20 || in.Seats < 1 || in.Seats > 8 || in.DestinationAreaID == "" {
			t.Fatalf("route %+v accepted", in)
		}
		seen := map[string]bool{}
		for _, id := range in.StationIDs {
			if seen[id] || id == "" || len(id) > 64 {
				t.Fatalf("station ids %q accepted", in.StationIDs)
			}
			seen[id] = true
		}
		if in.Vehicle != nil {
			if v, problem := text.Line(*in.Vehicle); problem != "" || v != *in.Vehicle || v == "" || text.Len(v) > 100 {
				t.Fatalf("vehicle %q accepted", *in.Vehicle)
			}
		}
	})
}
