// Package text checks and normalises the free text people type and other
// people read: names, vehicles, station and area names.
package text

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Line returns s as one line of human-readable text: in Unicode NFC (so
// that one name has one spelling in bytes), without surrounding white
// space. It returns a problem, phrased to follow a field name ("must
// not ..."), when s is not valid UTF-8 or holds a character that is
// invisible or changes how the text around it is shown:
//
//   - control characters (category Cc: NUL, BEL, tab, newline, ESC, ...);
//   - format characters (Cf: the bidirectional overrides and isolates such
//     as U+202E, zero-width spaces and joiners, the soft hyphen, the BOM);
//   - line and paragraph separators (Zl, Zp), private-use characters (Co)
//     and noncharacters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF).
//
// Such characters let one user make a name look like another, reorder what
// a driver's name appears to say to a rider, or break a log line. Refusing
// Cf also refuses the zero-width joiner of emoji sequences and of some
// Indic spellings; plain letters of every script remain.
func Line(s string) (clean string, problem string) {
	if !utf8.ValidString(s) {
		return s, "must be valid UTF-8"
	}
	s = strings.TrimSpace(norm.NFC.String(s))
	for _, r := range s {
		if what := forbidden(r); what != "" {
			return s, fmt.Sprintf("must not contain %s (U+%04X)", what, r)
		}
	}
	return s, ""
}

// forbidden names the class of r when a line may not hold it.
func forbidden(r rune) string {
	switch {
	case unicode.Is(unicode.Cc, r):
		return "control characters"
	case unicode.Is(unicode.Cf, r):
		return "invisible formatting characters"
	case unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r):
		return "line breaks"
	case unicode.Is(unicode.Co, r):
		return "private-use characters"
	case r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE:
		return "noncharacters"
	}
	return ""
}

// Len is the length of s in characters (code points), the unit every
// length limit on text is stated in.
func Len(s string) int { return utf8.RuneCountInString(s) }
