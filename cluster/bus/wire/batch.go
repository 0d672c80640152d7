package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"imgate/codec"
	"imgate/message"
)

// The batch format (version 1) carries many records in one AMQP message: the broker's
// cost is per message, not per byte. It is binary because every record crosses it
// four times (node → save queue → saver → node queue → node); JSON cost a core here.
//
//	batch    = version:1 byte (=1) · kind:1 byte · count:uvarint · count × (len:uvarint · record[len])
//	kind     = 'R' accepted records (node → saver) | 'S' persisted records (saver → node)
//	         | 'L' live-only records (SIGNED receipts relayed node → nodes, never stored)
//	record   = msgId:varint · msgType:uvarint · chatTime:varint (Unix ns, 0 = none)
//	         · senderConn:uvarint · receiverSeq:varint · senderSeq:varint · flags:1 byte
//	         · senderId · receiverId · msg · clientMsgId · node · extra   (each len:uvarint · bytes)
//	         · [group]                                                  (only with flag bit 4)
//	flags    = bit 0 duplicate · bit 1 server API sender · bit 2 broadcast · bit 3 forbidden
//	         · bit 4 group section follows
//	group    = groupId (len:uvarint · bytes) · count:uvarint · count × (user (len:uvarint · bytes) · seq:varint)
//
// A one-to-one record sets none of bits 1–4 and is byte for byte what the first
// decoders of version 1 read; the group section and the new flags were added to version
// 1 without changing it (a decoder that predates them refuses a group record alone).
//
// Each record is framed by its own length, so a decoder refuses one bad record (a field
// that overruns its frame, text that is not UTF-8, a record no store can take) and goes
// on with the next; only a broken frame (a length past the end) stops it, and what was
// decoded before stays good. A version it does not know is refused whole.
// Kind says what the records of a batch are.
type Kind byte

const (
	batchVersion = 1

	// Records are accepted records on their way to a saver.
	Records Kind = 'R'
	// Saved are persisted records on their way to the nodes.
	Saved Kind = 'S'
	// Live are records pushed without the store (SIGNED receipts relayed to every node).
	Live Kind = 'L'
)

// ErrBatch is wrapped by every decode error of a batch or one of its records.
var ErrBatch = errors.New("wire: bad batch")

// Encoder builds one batch. Make one with NewEncoder; reuse it with Reset.
type Encoder struct {
	buf   []byte
	count int
	kind  Kind
	rec   []byte // scratch for one record
}

// NewEncoder returns an empty batch of kind.
func NewEncoder(kind Kind) *Encoder {
	return &Encoder{kind: kind, buf: make([]byte, 0, 1024)}
}

// Reset starts a new batch of the same kind, keeping the buffers.
func (e *Encoder) Reset() {
	e.buf, e.count = e.buf[:0], 0
}

// Add appends one record (the seqs and flag only matter for kindSaved).
func (e *Encoder) Add(s *message.Saved) {
	m := &s.Msg
	r := e.rec[:0]
	r = binary.AppendVarint(r, m.MsgID)
	r = binary.AppendUvarint(r, uint64(m.MsgType))
	var ns int64
	if !m.ChatTime.IsZero() {
		ns = m.ChatTime.UnixNano()
	}
	r = binary.AppendVarint(r, ns)
	r = binary.AppendUvarint(r, s.SenderConn)
	r = binary.AppendVarint(r, s.ReceiverSeq)
	r = binary.AppendVarint(r, s.SenderSeq)
	var flags byte
	for bit, set := range [...]bool{s.Duplicate, s.Server, s.Broadcast, s.Forbidden, m.GroupID != ""} {
		if set {
			flags |= 1 << bit
		}
	}
	r = append(r, flags)
	for _, f := range [...]string{m.SenderID, m.ReceiverID, m.Msg, m.ClientMsgID, s.Node} {
		r = appendBytes(r, f)
	}
	r = binary.AppendUvarint(r, uint64(len(m.Extra)))
	r = append(r, m.Extra...)
	if m.GroupID != "" {
		r = appendBytes(r, m.GroupID)
		r = binary.AppendUvarint(r, uint64(len(s.Members)))
		for _, ms := range s.Members {
			r = appendBytes(r, ms.User)
			r = binary.AppendVarint(r, ms.Seq)
		}
	}
	e.rec = r
	e.buf = binary.AppendUvarint(e.buf, uint64(len(r)))
	e.buf = append(e.buf, r...)
	e.count++
}

// appendBytes appends a length-prefixed string field.
func appendBytes(r []byte, f string) []byte {
	r = binary.AppendUvarint(r, uint64(len(f)))
	return append(r, f...)
}

// Bytes returns the finished batch in a new slice (the publisher keeps it until confirmed).
func (e *Encoder) Bytes() []byte {
	out := appendHeader(make([]byte, 0, 2+binary.MaxVarintLen64+len(e.buf)), e.kind, e.count)
	return append(out, e.buf...)
}

// appendHeader appends the header every frame starts with, batch or change: version,
// kind and record count.
func appendHeader(out []byte, kind Kind, count int) []byte {
	out = append(out, batchVersion, byte(kind))
	return binary.AppendUvarint(out, uint64(count))
}

// readHeader reads the header appendHeader wrote: the frame's kind, its record count
// and the bytes of its records. The caller checks the kind.
func readHeader(b []byte) (kind Kind, count uint64, records []byte, err error) {
	if len(b) < 2 {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes, no header", ErrBatch, len(b))
	}
	if b[0] != batchVersion {
		return 0, 0, nil, fmt.Errorf("%w: version %d, want %d", ErrBatch, b[0], batchVersion)
	}
	count, n := binary.Uvarint(b[2:])
	if n <= 0 {
		return Kind(b[1]), 0, nil, fmt.Errorf("%w: bad record count", ErrBatch)
	}
	return Kind(b[1]), count, b[2+n:], nil
}

// nextRecord splits the next length-framed record off rest; ok is false when its frame
// runs past the end.
func nextRecord(rest []byte) (rec, after []byte, ok bool) {
	size, n := binary.Uvarint(rest)
	if n <= 0 || size > uint64(len(rest)-n) {
		return nil, rest, false
	}
	return rest[n : n+int(size)], rest[n+int(size):], true
}

// Encode returns the batch of kind holding recs.
func Encode(kind Kind, recs []message.Saved) []byte {
	e := NewEncoder(kind)
	for i := range recs {
		e.Add(&recs[i])
	}
	return e.Bytes()
}

// Decode parses a batch. It returns its kind, every record that decodes and
// validates, the errors of the records it refused (one per record, with its index),
// and err when the batch itself cannot be read on (bad header, broken frame); the
// records decoded before a broken frame are returned with it.
func Decode(b []byte) (kind Kind, out []message.Saved, refused []error, err error) {
	kind, count, rest, err := readHeader(b)
	if err != nil {
		return 0, nil, nil, err
	}
	if kind != Records && kind != Saved && kind != Live {
		return 0, nil, nil, fmt.Errorf("%w: kind %q", ErrBatch, kind)
	}
	out = make([]message.Saved, 0, min(count, uint64(len(rest)/16+1)))
	for i := uint64(0); i < count; i++ {
		rec, after, ok := nextRecord(rest)
		if !ok {
			return kind, out, refused, fmt.Errorf("%w: record %d: frame runs past the end", ErrBatch, i)
		}
		rest = after
		s, rerr := decodeRecord(rec)
		if rerr == nil {
			rerr = s.Validate()
		}
		if rerr != nil {
			refused = append(refused, fmt.Errorf("%w: record %d: %w", ErrBatch, i, rerr))
			continue
		}
		out = append(out, s)
	}
	if len(rest) > 0 {
		return kind, out, refused, fmt.Errorf("%w: %d bytes after %d records", ErrBatch, len(rest), count)
	}
	return kind, out, refused, nil
}

// recordReader reads the fields of one record frame.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) bytes() []byte {
	l := r.uvarint()
	if r.err != nil {
		return nil
	}
	if l > uint64(len(r.b)) {
		r.err = errors.New("field runs past its record")
		return nil
	}
	out := r.b[:l]
	r.b = r.b[l:]
	return out
}

func (r *recordReader) flags() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errors.New("truncated flags")
		return 0
	}
	f := r.b[0]
	r.b = r.b[1:]
	return f
}

// decodeRecord reads one record frame; strings are copied (the body is the broker's).
func decodeRecord(b []byte) (message.Saved, error) {
	r := recordReader{b: b}
	var s message.Saved
	m := &s.Msg
	m.MsgID = r.varint()
	m.MsgType = codec.MsgType(r.uvarint())
	if ns := r.varint(); ns != 0 {
		m.ChatTime = time.Unix(0, ns).UTC()
	}
	s.SenderConn = r.uvarint()
	s.ReceiverSeq = r.varint()
	s.SenderSeq = r.varint()
	flags := r.flags()
	s.Duplicate, s.Server, s.Broadcast, s.Forbidden = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
	m.SenderID = string(r.bytes())
	m.ReceiverID = string(r.bytes())
	m.Msg = string(r.bytes())
	m.ClientMsgID = string(r.bytes())
	s.Node = string(r.bytes())
	if x := r.bytes(); len(x) > 0 {
		m.Extra = append([]byte(nil), x...)
	}
	if flags&16 != 0 {
		m.GroupID = string(r.bytes())
		n := r.uvarint()
		if n > uint64(len(r.b)) { // every member takes at least 2 bytes
			r.err = errors.New("member count runs past its record")
		}
		if r.err == nil && n > 0 {
			s.Members = make([]message.MemberSeq, 0, n)
			for range n {
				u := string(r.bytes())
				s.Members = append(s.Members, message.MemberSeq{User: u, Seq: r.varint()})
				if r.err != nil {
					break
				}
			}
		}
		if r.err == nil && m.GroupID == "" {
			r.err = errors.New("group section without a groupId")
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the last field", len(r.b))
	}
	return s, r.err
}
