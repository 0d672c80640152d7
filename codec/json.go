package codec

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting inside unknown members, so hostile input cannot
// exhaust the stack.
const maxJSONDepth = 1000

// scanner is a minimal validating JSON reader over a borrowed byte slice. It
// never allocates: strings are reported as raw spans and decoded later.
type scanner struct {
	b   []byte
	i   int
	bad bool // syntax error seen; the input is not JSON
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it, 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// consume consumes c after optional space, or marks a syntax error.
func (s *scanner) consume(c byte) bool {
	if s.peek() != c {
		s.bad = true
		return false
	}
	s.i++
	return true
}

// str reads a string at s.i (which holds '"'). It returns the content
// between the quotes and whether it holds escapes.
func (s *scanner) str() (raw []byte, escaped bool) {
	start := s.i + 1
	for i := start; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.i = i + 1
			return s.b[start:i], escaped
		case c == '\\':
			escaped = true
			i++
			if i >= len(s.b) {
				s.bad = true
				return nil, false
			}
			switch s.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.b) || !isHex(s.b[i+1]) || !isHex(s.b[i+2]) || !isHex(s.b[i+3]) || !isHex(s.b[i+4]) {
					s.bad = true
					return nil, false
				}
				i += 4
			default:
				s.bad = true
				return nil, false
			}
		case c < 0x20:
			s.bad = true
			return nil, false
		}
	}
	s.bad = true
	return nil, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'f')
}

// number reads a JSON number at s.i and reports whether it is an integer
// (no fraction, no exponent).
func (s *scanner) number() (raw []byte, integer bool) {
	b, i := s.b, s.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		s.bad = true
		return nil, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			s.bad = true
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			s.bad = true
			return nil, false
		}
	}
	s.i = i
	return b[start:i], integer
}

// literal consumes lit (true, false, null) at s.i.
func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		s.bad = true
		return false
	}
	s.i += len(lit)
	return true
}

// skip validates and skips one value after optional space; it reports the
// value's span in s.b.
func (s *scanner) skip(depth int) (start, end int) {
	c := s.peek()
	start = s.i
	if depth > maxJSONDepth {
		s.bad = true
		return start, start
	}
	switch {
	case c == '{':
		s.i++
		if s.peek() == '}' {
			s.i++
			break
		}
		for !s.bad {
			if s.peek() != '"' {
				s.bad = true
				break
			}
			s.str()
			if !s.consume(':') {
				break
			}
			s.skip(depth + 1)
			if s.bad {
				break
			}
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.consume('}')
			break
		}
	case c == '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			break
		}
		for !s.bad {
			s.skip(depth + 1)
			if s.bad {
				break
			}
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.consume(']')
			break
		}
	case c == '"':
		s.str()
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		s.number()
	default:
		s.bad = true
	}
	return start, s.i
}

// parseInt parses a JSON integer or a string of decimal digits (an optional
// leading '-') into an int64; ok is false on overflow or any other byte.
func parseInt(raw []byte) (v int64, ok bool) {
	neg := false
	if len(raw) > 0 && raw[0] == '-' {
		neg, raw = true, raw[1:]
	}
	if len(raw) == 0 || len(raw) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// appendUnquoted appends the decoded content of a JSON string whose raw
// content (between the quotes) holds escapes. Invalid surrogates become
// U+FFFD, as encoding/json does. raw has been validated by scanner.str.
func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2 = hex4(raw[i+3:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					i += 6
					r = dec
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, raw[i])
		}
		i++
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// appendCompact appends the JSON value v without insignificant whitespace.
func appendCompact(dst, v []byte) []byte {
	inStr := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if inStr {
			dst = append(dst, c)
			switch c {
			case '\\':
				i++
				dst = append(dst, v[i])
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
		case '"':
			inStr = true
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// checkExtraValue checks one JSON value v (or a member's quoted key), already
// validated by scanner, against the bounds of ChatMsg.Extra: nesting at most
// MaxExtraDepth, number literals of at most MaxExtraNumber bytes that parse as a
// finite float64, no \u0000 escape in any string. It returns v's compacted size, or
// why v is refused.
func checkExtraValue(v []byte) (size int, why string) {
	depth := 0
	for i := 0; i < len(v); {
		switch c := v[i]; {
		case c == '"':
			j := i + 1
			for v[j] != '"' {
				if v[j] == '\\' {
					if v[j+1] == 'u' && string(v[j+2:j+6]) == "0000" {
						return 0, "unknown chatMsg members hold a \\u0000 escape"
					}
					j++
				}
				j++
			}
			size += j + 1 - i
			i = j + 1
		case c == '{' || c == '[':
			if depth++; depth > MaxExtraDepth {
				return 0, "unknown chatMsg members are nested deeper than " + strconv.Itoa(MaxExtraDepth)
			}
			size++
			i++
		case c == '}' || c == ']':
			depth--
			size++
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '-' || (c >= '0' && c <= '9'):
			j := i
			for j < len(v) && isNumberByte(v[j]) {
				j++
			}
			if j-i > MaxExtraNumber {
				return 0, "a number in unknown chatMsg members is longer than " + strconv.Itoa(MaxExtraNumber) + " bytes"
			}
			if _, err := strconv.ParseFloat(string(v[i:j]), 64); err != nil {
				return 0, "a number in unknown chatMsg members is out of range"
			}
			size += j - i
			i = j
		default: // , : and the letters of true, false, null
			size++
			i++
		}
	}
	return size, ""
}

func isNumberByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}
