package flatjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

type member struct {
	key  string
	kind Kind
	val  string
}

func scan(data string) ([]member, bool) {
	var got []member
	ok := Scan([]byte(data), func(key []byte, kind Kind, val []byte) bool {
		got = append(got, member{string(key), kind, string(val)})
		return true
	})
	return got, ok
}

func TestScan(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []member // nil with ok false
	}{
		{"a fix", `{"type":"location","lat":12.9,"lng":-77.5e1,"at":"2025-03-01T00:00:00Z"}`,
			[]member{{"type", String, "location"}, {"lat", Number, "12.9"}, {"lng", Number, "-77.5e1"}, {"at", String, "2025-03-01T00:00:00Z"}}},
		{"white space and the literals", " {\n\t\"a\" : true ,\"b\":false,\"c\":null , \"d\":0 }\r\n",
			[]member{{"a", True, "true"}, {"b", False, "false"}, {"c", Null, "null"}, {"d", Number, "0"}}},
		{"empty object", ` { } `, []member{}},
		{"duplicate keys are all seen", `{"a":1,"a":2}`, []member{{"a", Number, "1"}, {"a", Number, "2"}}},
		{"escape in a string", `{"a":"x\"y"}`, nil},
		{"escape in a key", `{"\u0061":1}`, nil},
		{"non-ASCII", `{"a":"é"}`, nil},
		{"control character", "{\"a\":\"x\ty\"}", nil},
		{"nested object", `{"a":{}}`, nil},
		{"array", `{"a":[1]}`, nil},
		{"top-level array", `[1]`, nil},
		{"leading zero", `{"a":01}`, nil},
		{"plus sign", `{"a":+1}`, nil},
		{"bare dot", `{"a":1.}`, nil},
		{"bare exponent", `{"a":1e}`, nil},
		{"trailing comma", `{"a":1,}`, nil},
		{"missing colon", `{"a" 1}`, nil},
		{"trailing data", `{"a":1} x`, nil},
		{"two objects", `{"a":1}{"a":2}`, nil},
		{"unterminated", `{"a":1`, nil},
		{"word run on", `{"a":truex}`, nil},
		{"unquoted key", `{a:1}`, nil},
		{"empty", ``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := scan(tt.in)
			if ok != (tt.want != nil) {
				t.Fatalf("Scan(%q) ok = %v, want %v", tt.in, ok, tt.want != nil)
			}
			if !ok {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Scan(%q) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("member %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestScanStopsWhenToldTo(t *testing.T) {
	n := 0
	ok := Scan([]byte(`{"a":1,"b":2}`), func([]byte, Kind, []byte) bool { n++; return false })
	if ok || n != 1 {
		t.Errorf("ok = %v after %d members, want false after 1", ok, n)
	}
}

// Whatever Scan accepts, encoding/json accepts too, with the same members
// (the last of duplicate keys winning) and the same numbers, as written.
func FuzzScan(f *testing.F) {
	for _, s := range []string{`{"type":"location","lat":1.5,"lng":-2e3,"at":"x"}`, `{}`, `{"a":null,"b":true}`,
		`{"a":1,"a":"2"}`, `{"a":-0.0e+1}`, `{"a":1e400}`, `[1]`, `{"a":01}`, ` {"a" :"b" } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := map[string]member{}
		if !Scan(data, func(key []byte, kind Kind, val []byte) bool {
			got[string(key)] = member{string(key), kind, string(val)}
			return true
		}) {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Scan accepted %q, which is not valid JSON", data)
		}
		var want map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("Scan accepted %q, encoding/json did not: %v", data, err)
		}
		if len(want) != len(got) {
			t.Fatalf("%q: Scan saw %d keys, encoding/json %d", data, len(got), len(want))
		}
		for k, w := range want {
			g := got[k]
			switch w := w.(type) {
			case string:
				if g.kind != String || g.val != w {
					t.Errorf("%q: %s = %v, want string %q", data, k, g, w)
				}
			case json.Number:
				if g.kind != Number || g.val != w.String() {
					t.Errorf("%q: %s = %v, want number %v", data, k, g, w)
				}
			case bool:
				if (w && g.kind != True) || (!w && g.kind != False) {
					t.Errorf("%q: %s = %v, want %v", data, k, g, w)
				}
			case nil:
				if g.kind != Null {
					t.Errorf("%q: %s = %v, want null", data, k, g)
				}
			}
		}
	})
}
