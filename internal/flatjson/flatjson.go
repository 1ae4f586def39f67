// Package flatjson reads one flat JSON object (scalar members only)
// without allocating, for messages on a hot path; whatever it does not
// handle is left to encoding/json, which then gives the exact result or
// error clients expect.
package flatjson

// Kind is the kind of a member's value.
type Kind uint8

// The kinds of value Scan hands out.
const (
	String Kind = iota + 1 // val is the text between the quotes (no escapes in it)
	Number                 // val is a number as JSON writes it
	True
	False
	Null
)

// Scan walks data, which must be exactly one JSON object, with optional
// white space around and inside it, whose keys are plain ASCII strings and
// whose values are plain ASCII strings, numbers, true, false or null.
// "Plain" means no escape sequence and no control character. It calls fn
// for each member, in order, with the key and the value (strings without
// their quotes); the slices alias data.
//
// Scan returns false when data is not such an object, including when it
// is not valid JSON at all, or when fn returns false; the caller then
// decodes with encoding/json. When Scan returns true, data is valid JSON
// and fn has seen every member.
func Scan(data []byte, fn func(key []byte, kind Kind, val []byte) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		key, j, ok := plainString(data, i)
		if !ok {
			return false
		}
		i = skipSpace(data, j)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return false
		}
		var kind Kind
		var val []byte
		switch c := data[i]; {
		case c == '"':
			if val, j, ok = plainString(data, i); !ok {
				return false
			}
			kind = String
		case c == '-' || (c >= '0' && c <= '9'):
			if j = number(data, i); j < 0 {
				return false
			}
			kind, val = Number, data[i:j]
		case hasWord(data, i, "true"):
			kind, val, j = True, data[i:i+4], i+4
		case hasWord(data, i, "false"):
			kind, val, j = False, data[i:i+5], i+5
		case hasWord(data, i, "null"):
			kind, val, j = Null, data[i:i+4], i+4
		default:
			return false
		}
		if !fn(key, kind, val) {
			return false
		}
		i = skipSpace(data, j)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// plainString reads the string starting at data[i] (its opening quote),
// returning its contents and the index after the closing quote; ok is
// false unless it is a plain ASCII string.
func plainString(data []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return data[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// number reads the JSON number starting at data[i] and returns the index
// after it, or -1 if it is not one:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func number(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i = digits(data, i)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := digits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

// hasWord reports whether data[i:] begins with w.
func hasWord(data []byte, i int, w string) bool {
	return len(data)-i >= len(w) && string(data[i:i+len(w)]) == w
}
