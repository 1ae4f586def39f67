package rider

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
)

// Ride request bodies: a refusal is a client error; what is accepted
// arrives within [-10 min, +24 h] of now with a party of 1 to 4.
func FuzzRideRequestBody(f *testing.F) {
	f.Add([]byte(`{"station_id":"hsr","destination_area_id":"kudlu-gate","arrival_time":"2026-11-25T08:30:00Z","party_size":2}`))
	f.Add([]byte(`{"station_id":"","destination_area_id":"x","arrival_time":"tomorrow","party_size":0}`))
	now := time.Date(2026, 11, 25, 8, 20, 0, 0, time.UTC)
	s := &Service{now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var in RequestInput
		if err := httpx.Decode(r, &in); err != nil {
			if _, _, ok := fault.KindOf(err); !ok {
				t.Fatalf("decoding %q: %v is not a client error", body, err)
			}
			return
		}
		at, party, err := s.validate(in)
		if err != nil {
			if _, _, ok := fault.KindOf(err); !ok {
				t.Fatalf("validation error %v has no kind", err)
			}
			return
		}
		if at.Before(now.Add(-10*time.Minute)) || at.After(now.Add(24*time.Hour)) || party < 1 || party > 4 {
			t.Fatalf("arrival %s party %d accepted", at, party)
		}
		if in.StationID == "" || len(in.StationID) > 64 || in.DestinationAreaID == "" || len(in.DestinationAreaID) > 64 {
			t.Fatalf("ids %q %q accepted", in.StationID, in.DestinationAreaID)
		}
	})
}
