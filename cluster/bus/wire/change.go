package wire

import (
	"encoding/binary"
	"fmt"

	"imgate/message"
)

// Group changes travel in the same frame as batches (appendHeader, nextRecord), as one
// record:
//
//	change   = version:1 byte (=1) · kind:1 byte · count:uvarint (=1) · len:uvarint · body[len]
//	kind     = 'G' groups changed (server API → every node, on the fanout exchange)
//	         | 'A' change applied (node → the API's node queue, routed by its id)
//	body     = id:uvarint · node (len:uvarint · bytes) · count:uvarint · count × groupId (len:uvarint · bytes)
//
// In a 'G' node is the announcing API's bus id (where the answers go) and the group ids
// are those whose membership changed; in an 'A' node is the answering node and there
// are no group ids. A decoder that predates these kinds refuses them whole.
const (
	// GroupsChanged announces a membership change of some groups.
	GroupsChanged Kind = 'G'
	// ChangeApplied answers a GroupsChanged: the node dropped the groups from its cache.
	ChangeApplied Kind = 'A'
)

// Change is the body of a GroupsChanged or ChangeApplied message.
type Change struct {
	ID     uint64
	Node   string
	Groups []string
}

// KindOf returns the kind of a batch or change message b, 0 when b has no header.
func KindOf(b []byte) Kind {
	if len(b) < 2 {
		return 0
	}
	return Kind(b[1])
}

// EncodeChange returns the message of kind (GroupsChanged or ChangeApplied) carrying c.
func EncodeChange(kind Kind, c Change) []byte {
	var body []byte
	body = binary.AppendUvarint(body, c.ID)
	body = appendBytes(body, c.Node)
	body = binary.AppendUvarint(body, uint64(len(c.Groups)))
	for _, g := range c.Groups {
		body = appendBytes(body, g)
	}
	out := appendHeader(make([]byte, 0, 3+2*binary.MaxVarintLen64+len(body)), kind, 1)
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...)
}

// DecodeChange parses a GroupsChanged or ChangeApplied message. Every id in it must
// be a valid id (message.ValidID): a change that names a bad one is refused whole.
func DecodeChange(b []byte) (Kind, Change, error) {
	var c Change
	kind, count, rest, err := readHeader(b)
	if err != nil {
		return 0, c, err
	}
	if kind != GroupsChanged && kind != ChangeApplied {
		return 0, c, fmt.Errorf("%w: kind %q is not a change", ErrBatch, kind)
	}
	if count != 1 {
		return 0, c, fmt.Errorf("%w: a change holds one record, not %d", ErrBatch, count)
	}
	body, after, ok := nextRecord(rest)
	if !ok || len(after) > 0 {
		return 0, c, fmt.Errorf("%w: change frame does not match its length", ErrBatch)
	}
	r := recordReader{b: body}
	c.ID = r.uvarint()
	c.Node = string(r.bytes())
	groups := r.uvarint()
	if r.err == nil && groups > uint64(len(r.b)) { // every id takes at least 2 bytes
		return 0, c, fmt.Errorf("%w: group count runs past the change", ErrBatch)
	}
	for i := uint64(0); i < groups && r.err == nil; i++ {
		c.Groups = append(c.Groups, string(r.bytes()))
	}
	if r.err == nil && len(r.b) > 0 {
		return 0, c, fmt.Errorf("%w: %d bytes after the change", ErrBatch, len(r.b))
	}
	if r.err != nil {
		return 0, c, fmt.Errorf("%w: change: %w", ErrBatch, r.err)
	}
	if !message.ValidID(c.Node) {
		return 0, c, fmt.Errorf("%w: change from an invalid node id", ErrBatch)
	}
	if kind == GroupsChanged && len(c.Groups) == 0 {
		return 0, c, fmt.Errorf("%w: a change of no group", ErrBatch)
	}
	for _, g := range c.Groups {
		if !message.ValidID(g) {
			return 0, c, fmt.Errorf("%w: change names an invalid group id", ErrBatch)
		}
	}
	return kind, c, nil
}
