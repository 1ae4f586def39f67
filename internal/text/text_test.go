package text

import (
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	tests := []struct {
		name, in, want string
		refused        bool
	}{
		{"plain", "  Asha Rao ", "Asha Rao", false},
		{"Kannada", "ಆಶಾ", "ಆಶಾ", false},
		{"decomposed becomes composed", "Jose\u0301", "José", false},
		{"emoji", "Ravi 🚗", "Ravi 🚗", false},
		{"right-to-left override", "Ravi\u202egnp.exe", "", true},
		{"left-to-right isolate", "a\u2066b", "", true},
		{"zero-width space", "Ra\u200bvi", "", true},
		{"zero-width joiner", "a\u200db", "", true},
		{"byte order mark", "\ufeffRavi", "", true},
		{"soft hyphen", "Ra\u00advi", "", true},
		{"newline", "Ravi\nDriver", "", true},
		{"tab", "Ravi\tK", "", true},
		{"bell", "Ravi\a", "", true},
		{"escape", "\x1b[31mRavi", "", true},
		{"NUL", "Ra\x00vi", "", true},
		{"C1 control", "Ra\u0085vi", "", true},
		{"line separator", "a\u2028b", "", true},
		{"paragraph separator", "a\u2029b", "", true},
		{"private use", "a\ue000", "", true},
		{"noncharacter", "a\ufdd0", "", true},
		{"noncharacter FFFF", "a\uffff", "", true},
		{"invalid UTF-8", "a\xffb", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problem := Line(tt.in)
			if tt.refused != (problem != "") {
				t.Fatalf("Line(%q) problem %q, want refused=%t", tt.in, problem, tt.refused)
			}
			if !tt.refused && got != tt.want {
				t.Fatalf("Line(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.refused && !strings.HasPrefix(problem, "must ") {
				t.Fatalf("problem %q does not read after a field name", problem)
			}
		})
	}
}

func FuzzLine(f *testing.F) {
	for _, s := range []string{"Asha", "Jose\u0301", "a\u202eb", "\x00", "a\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, problem := Line(s)
		if problem != "" {
			return
		}
		again, p2 := Line(got)
		if p2 != "" || again != got {
			t.Fatalf("Line is not idempotent: %q -> %q -> %q (%s)", s, got, again, p2)
		}
		for _, r := range got {
			if forbidden(r) != "" {
				t.Fatalf("Line(%q) accepted %U", s, r)
			}
		}
	})
}
