package location

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// scanFix is a shortcut, never a second opinion: whatever it reads,
// encoding/json (the decoder HandleMessage falls back to) reads the same.
func FuzzScanFixAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"type":"location","lat":12.9716,"lng":77.5946,"at":"2025-03-01T09:00:00Z","speed_mps":8,"heading":90}`,
		`{"type":"location","lat":12.9716,"lng":77.5946}`,
		`{"lat":1,"lat":2,"lng":-0.5e1}`,
		`{"Lat":1,"lng":2}`,
		`{"type":"location","lat":null,"lng":1}`,
		`{"type":"location","lat":1e400,"lng":1}`,
		`{"type":"location","lat":1,"lng":1,"alt":3}`,
		`{"type":"loc\u0061tion","lat":1,"lng":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := scanFix(raw)
		if !ok {
			return
		}
		var want FixInput
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("scanFix read %q, encoding/json refused it: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("scanFix(%q) = %s, encoding/json %s", raw, show(got), show(want))
		}
	})
}

func show(in FixInput) string {
	b, _ := json.Marshal(in)
	return string(b)
}
