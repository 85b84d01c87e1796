package authz

import (
	"encoding/json"
	"unicode/utf8"
)

// DecodeJSONObject reads a JSON object the way Python's json.loads reads
// bytes: a token segment as PyJWT reads it, an introspection answer as La
// Suite's resource server reads it (authz/oidc). gatehouse thus accepts and
// refuses exactly the bytes Meet does:
//
//   - the bytes are UTF-8, an optional UTF-8 BOM first (json.loads detects
//     the encoding and strips it); encoded surrogates (ED A0..BF xx) are
//     accepted, because json.loads decodes with "surrogatepass". Any other
//     invalid UTF-8, anywhere, refuses the segment;
//   - one JSON object, with only JSON whitespace (space, \t, \n, \r) around
//     it: trailing data ("Extra data") refuses it;
//   - strings refuse raw control characters (strict mode) and decode \uXXXX
//     escapes as Python does: a high surrogate escape followed by a low one
//     is one character, any other surrogate escape is a lone surrogate;
//   - duplicate keys: the last one wins.
//
// A Python string holding lone surrogates cannot be valid UTF-8, so it is
// kept as the bytes Python's "surrogatepass" would encode it to (ED A0 80
// for U+D800). That keeps two strings equal exactly when Python finds them
// equal, and makes any lone surrogate invalid UTF-8 in Go: a claim gatehouse
// compares (iss, aud, alg) never matches, and one it forwards or looks up
// (user_id, client_id, scope) fails HeaderSafe and is refused.
//
// Values decode to what encoding/json with UseNumber gives: map[string]any,
// []any, string, json.Number, bool and nil.
//
// Deliberately refused although json.loads accepts them (Meet never issues
// them): the NaN, Infinity and -Infinity literals, UTF-16 and UTF-32 text,
// and nesting deeper than maxJSONDepth.
func DecodeJSONObject(b []byte) (map[string]any, bool) {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		b = b[3:]
	}
	d := jsonDecoder{b: b}
	d.space()
	if d.peek() != '{' {
		return nil, false // PyJWT: "must be a json object"
	}
	m, ok := d.object()
	if !ok {
		return nil, false
	}
	d.space()
	if d.i != len(d.b) {
		return nil, false // json.loads: "Extra data"
	}
	return m, true
}

// maxJSONDepth bounds nesting. A Meet token nests two levels at most;
// Python gives up (RecursionError) at about a thousand.
const maxJSONDepth = 64

type jsonDecoder struct {
	b     []byte
	i     int
	depth int
}

// peek returns the current byte, or 0 at the end (0 is never valid there).
func (d *jsonDecoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// space skips JSON whitespace, which is exactly Python json's.
func (d *jsonDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value() (any, bool) {
	switch c := d.peek(); {
	case c == '"':
		return d.str()
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return d.number()
	default:
		return nil, false
	}
}

func (d *jsonDecoder) literal(word string) bool {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return false
	}
	d.i += len(word)
	return true
}

func (d *jsonDecoder) object() (map[string]any, bool) {
	if d.depth++; d.depth > maxJSONDepth {
		return nil, false
	}
	d.i++ // '{'
	m := make(map[string]any, 8)
	d.space()
	if d.peek() == '}' {
		d.i++
		d.depth--
		return m, true
	}
	for {
		if d.peek() != '"' {
			return nil, false
		}
		k, ok := d.key()
		if !ok {
			return nil, false
		}
		d.space()
		if d.peek() != ':' {
			return nil, false
		}
		d.i++
		d.space()
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		m[k] = v
		d.space()
		switch d.peek() {
		case ',':
			d.i++
			d.space()
		case '}':
			d.i++
			d.depth--
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *jsonDecoder) array() ([]any, bool) {
	if d.depth++; d.depth > maxJSONDepth {
		return nil, false
	}
	d.i++ // '['
	a := []any{}
	d.space()
	if d.peek() == ']' {
		d.i++
		d.depth--
		return a, true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.space()
		switch d.peek() {
		case ',':
			d.i++
			d.space()
		case ']':
			d.i++
			d.depth--
			return a, true
		default:
			return nil, false
		}
	}
}

// number scans the JSON number grammar, which is also Python's:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?, ASCII digits only.
// The text is kept as a json.Number so time claims keep their exact value.
func (d *jsonDecoder) number() (any, bool) {
	start := d.i
	if d.peek() == '-' {
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case '1' <= c && c <= '9':
		d.digits()
	default:
		return nil, false // also "-Infinity"
	}
	if d.peek() == '.' {
		d.i++
		if !d.digits() {
			return nil, false
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !d.digits() {
			return nil, false
		}
	}
	return json.Number(d.b[start:d.i]), true
}

// digits skips a run of ASCII digits and reports whether there was one.
func (d *jsonDecoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// key reads an object key. The names gatehouse reads come back as constants,
// so decoding a Meet token allocates no key strings.
func (d *jsonDecoder) key() (string, bool) {
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		c := d.b[j]
		if c == '"' {
			if k, known := knownKey(d.b[start:j]); known {
				d.i = j + 1
				return k, true
			}
			break
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	return d.str()
}

func knownKey(b []byte) (string, bool) {
	switch string(b) { // no allocation: the compiler compares in place
	case "alg":
		return "alg", true
	case "typ":
		return "typ", true
	case "iat":
		return "iat", true
	case "exp":
		return "exp", true
	case "nbf":
		return "nbf", true
	case "iss":
		return "iss", true
	case "aud":
		return "aud", true
	case "sub":
		return "sub", true
	case "jti":
		return "jti", true
	case "user_id":
		return "user_id", true
	case "client_id":
		return "client_id", true
	case "delegated":
		return "delegated", true
	case "scope":
		return "scope", true
	}
	return "", false
}

// str reads a string (d.i at its opening quote).
func (d *jsonDecoder) str() (string, bool) {
	d.i++
	start := d.i
	// Fast path: printable ASCII without escapes, the whole of a Meet token.
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			s := string(d.b[start:d.i])
			d.i++
			return s, true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		d.i++
	}
	buf := make([]byte, 0, d.i-start+16)
	buf = append(buf, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(buf), true
		case c < 0x20:
			return "", false // json.loads (strict): "Invalid control character"
		case c == '\\':
			var ok bool
			if buf, ok = d.escape(buf); !ok {
				return "", false
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			d.i++
		default:
			n := pyUTF8Len(d.b[d.i:])
			if n == 0 {
				return "", false // not UTF-8, even with surrogatepass
			}
			buf = append(buf, d.b[d.i:d.i+n]...)
			d.i += n
		}
	}
	return "", false // unterminated
}

// escape decodes the escape at d.i (a backslash) onto buf.
func (d *jsonDecoder) escape(buf []byte) ([]byte, bool) {
	if d.i+1 >= len(d.b) {
		return buf, false
	}
	c := d.b[d.i+1]
	d.i += 2
	switch c {
	case '"', '\\', '/':
		return append(buf, c), true
	case 'b':
		return append(buf, '\b'), true
	case 'f':
		return append(buf, '\f'), true
	case 'n':
		return append(buf, '\n'), true
	case 'r':
		return append(buf, '\r'), true
	case 't':
		return append(buf, '\t'), true
	case 'u':
	default:
		return buf, false
	}
	r, ok := d.hex4(d.i)
	if !ok {
		return buf, false
	}
	d.i += 4
	// As CPython's scanner: a high surrogate followed by a \u escape joins it
	// when that is a low surrogate; a bad second escape is an error either
	// way, and any other second escape is decoded on its own.
	if 0xD800 <= r && r <= 0xDBFF && d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
		r2, ok := d.hex4(d.i + 2)
		if !ok {
			return buf, false
		}
		if 0xDC00 <= r2 && r2 <= 0xDFFF {
			r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
			d.i += 6
		}
	}
	return appendPyRune(buf, r), true
}

// hex4 reads exactly four hex digits at i.
func (d *jsonDecoder) hex4(i int) (rune, bool) {
	if len(d.b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// appendPyRune appends r as Python's "surrogatepass" UTF-8 would: a
// surrogate as its three-byte form, which utf8.AppendRune refuses.
func appendPyRune(buf []byte, r rune) []byte {
	if 0xD800 <= r && r <= 0xDFFF {
		return append(buf, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return utf8.AppendRune(buf, r)
}

// pyUTF8Len returns the length of the UTF-8 sequence that starts b (b[0] >=
// 0x80), with encoded surrogates allowed as Python's "surrogatepass" does,
// or 0 if there is none: a stray continuation byte, an overlong form, a
// truncated sequence, or a code point above U+10FFFF.
func pyUTF8Len(b []byte) int {
	cont := func(i int, lo, hi byte) bool { return i < len(b) && lo <= b[i] && b[i] <= hi }
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		if cont(1, 0x80, 0xBF) {
			return 2
		}
	case c == 0xE0:
		if cont(1, 0xA0, 0xBF) && cont(2, 0x80, 0xBF) {
			return 3
		}
	case 0xE1 <= c && c <= 0xEF: // ED A0..BF: a surrogate, passed
		if cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) {
			return 3
		}
	case c == 0xF0:
		if cont(1, 0x90, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) {
			return 4
		}
	case 0xF1 <= c && c <= 0xF3:
		if cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) {
			return 4
		}
	case c == 0xF4:
		if cont(1, 0x80, 0x8F) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) {
			return 4
		}
	}
	return 0
}
