package codec

import (
	"encoding/binary"
	"unicode/utf8"
)

// utf8State is an incremental UTF-8 validator: it carries an incomplete
// trailing sequence across calls, so a text message can be validated
// fragment by fragment (and a frame byte by byte) and rejected at the first
// byte that can never become valid. The zero value is the initial state.
type utf8State struct {
	need   uint8 // continuation bytes still expected for the current sequence
	lo, hi uint8 // bounds of the next continuation byte (when need > 0)
}

// complete reports whether no sequence is pending: the bytes seen so far form
// valid UTF-8 on their own.
func (s *utf8State) complete() bool { return s.need == 0 }

// feed validates p as the continuation of the bytes fed so far. It reports
// false as soon as a byte makes the input invalid whatever follows.
func (s *utf8State) feed(p []byte) bool {
	i := 0
	for i < len(p) {
		if s.need == 0 {
			// ASCII fast path, 8 bytes at a time.
			for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 == 0 {
				i += 8
			}
			for i < len(p) && p[i] < utf8.RuneSelf {
				i++
			}
			if i == len(p) {
				return true
			}
			c := p[i]
			i++
			switch {
			case c >= 0xC2 && c <= 0xDF:
				s.need, s.lo, s.hi = 1, 0x80, 0xBF
			case c == 0xE0:
				s.need, s.lo, s.hi = 2, 0xA0, 0xBF
			case c == 0xED:
				s.need, s.lo, s.hi = 2, 0x80, 0x9F // no surrogates
			case c >= 0xE1 && c <= 0xEF:
				s.need, s.lo, s.hi = 2, 0x80, 0xBF
			case c == 0xF0:
				s.need, s.lo, s.hi = 3, 0x90, 0xBF
			case c >= 0xF1 && c <= 0xF3:
				s.need, s.lo, s.hi = 3, 0x80, 0xBF
			case c == 0xF4:
				s.need, s.lo, s.hi = 3, 0x80, 0x8F // at most U+10FFFF
			default:
				return false
			}
			continue
		}
		c := p[i]
		if c < s.lo || c > s.hi {
			return false
		}
		i++
		s.need--
		s.lo, s.hi = 0x80, 0xBF
	}
	return true
}

// feedMasked is feed for bytes still masked with mask, where p starts at
// payload offset off. It does not modify p.
func (s *utf8State) feedMasked(p []byte, mask [4]byte, off int) bool {
	var chunk [64]byte
	for len(p) > 0 {
		k := copy(chunk[:], p)
		for j := 0; j < k; j++ {
			chunk[j] ^= mask[(off+j)&3]
		}
		if !s.feed(chunk[:k]) {
			return false
		}
		p = p[k:]
		off += k
	}
	return true
}
