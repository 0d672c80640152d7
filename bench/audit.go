package bench

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// The loss audit. Every content message the generator sends gets an index into a msgTable. At
// send time the table records which devices should receive it: a 64-bit mask with bit d for
// device d of the receiver and bit 32+d for device d of the sender (the sending device itself
// excluded), each set only if that device was bound (its CONNECT_INIT acknowledged) and not
// dropped. A delivery sets the device's bit in the delivered mask (atomically; a bit already set
// is a duplicate). After the grace period, reconcile counts, over ACKed messages, expected pairs
// and those delivered; an expected pair not delivered is lost, unless its device dropped during
// the run, in which case it is excluded and reported apart.

const (
	chunkBits = 16
	chunkSize = 1 << chunkBits
	maxChunks = 1 << 14 // 2^30 messages per worker
)

// Message states. A record is published by storing msgSent after its plain fields are set;
// readers load the state before reading them.
const (
	msgReserved uint32 = iota
	msgSent
	msgAcked
	msgRefused // ERROR from the server
)

// msgRec is one sent message. The plain fields are written by the sender before it stores
// state msgSent (and before the message hits the wire); the rest are atomic.
type msgRec struct {
	sendNanos int64
	sender    int32      // connection index of the sender
	receiver  int32      // user index of the receiver (-1 for a group message)
	expected  uint64     // device bits expected to receive it (see above)
	grp       *groupMask // a group message's expected and delivered devices (groups.go); nil otherwise
	delivered atomic.Uint64
	dups      atomic.Uint32
	state     atomic.Uint32
	msgID     atomic.Int64 // from the ACK
}

type msgChunk [chunkSize]msgRec

// msgTable is an append-only table of msgRec, growing by chunks, safe for concurrent use:
// add from senders, at from readers.
type msgTable struct {
	n      atomic.Uint64
	mu     sync.Mutex // guards allocation of chunks
	chunks [maxChunks]atomic.Pointer[msgChunk]
}

// add reserves the next index and returns it with its record; ok is false when the table is full.
func (t *msgTable) add() (uint64, *msgRec, bool) {
	i := t.n.Add(1) - 1
	ci := i >> chunkBits
	if ci >= maxChunks {
		return 0, nil, false
	}
	c := t.chunks[ci].Load()
	if c == nil {
		t.mu.Lock()
		if c = t.chunks[ci].Load(); c == nil {
			c = new(msgChunk)
			t.chunks[ci].Store(c)
		}
		t.mu.Unlock()
	}
	return i, &c[i&(chunkSize-1)], true
}

// at returns the record of index i, or nil if i was never handed out.
func (t *msgTable) at(i uint64) *msgRec {
	if i >= t.n.Load() || i>>chunkBits >= maxChunks {
		return nil
	}
	c := t.chunks[i>>chunkBits].Load()
	if c == nil {
		return nil
	}
	return &c[i&(chunkSize-1)]
}

// Audit is the result of the loss audit.
type Audit struct {
	Acked            uint64 `json:"acked"`            // messages ACKed
	Expected         uint64 `json:"expected"`         // (ACKed message, online device) pairs
	Delivered        uint64 `json:"delivered"`        // expected pairs delivered at least once
	Lost             uint64 `json:"lost"`             // expected pairs never delivered, device still connected
	Duplicated       uint64 `json:"duplicated"`       // extra deliveries of a pair already delivered
	ExcludedDropped  uint64 `json:"excludedDropped"`  // expected pairs not delivered whose device dropped
	Unexpected       uint64 `json:"unexpected"`       // deliveries to a device that was not online at send time
	UnackedDelivered uint64 `json:"unackedDelivered"` // messages delivered somewhere but never ACKed
	Unacked          uint64 `json:"unacked"`          // messages sent and neither ACKed nor refused
	LossyDevices     uint64 `json:"lossyDevices"`     // groups: member devices that lost at least one message
}

// Add sums o into a.
func (a *Audit) Add(o Audit) {
	a.Acked += o.Acked
	a.Expected += o.Expected
	a.Delivered += o.Delivered
	a.Lost += o.Lost
	a.Duplicated += o.Duplicated
	a.ExcludedDropped += o.ExcludedDropped
	a.Unexpected += o.Unexpected
	a.UnackedDelivered += o.UnackedDelivered
	a.Unacked += o.Unacked
	a.LossyDevices += o.LossyDevices
}

// reconcile audits the table. droppedMask returns, for a message, the device bits (same layout
// as expected) whose connection dropped during the run; connDropped says the same of one
// connection, for group messages.
func (t *msgTable) reconcile(droppedMask func(r *msgRec) uint64, connDropped func(conn int32) bool) Audit {
	var a Audit
	lossy := map[int32]struct{}{}
	n := t.n.Load()
	for i := uint64(0); i < n; i++ {
		r := t.at(i)
		if r == nil {
			continue
		}
		a.Duplicated += uint64(r.dups.Load())
		if r.grp != nil {
			a.Unexpected += r.grp.unexpected()
			switch r.state.Load() {
			case msgAcked:
				a.Acked++
				r.grp.audit(&a, connDropped, lossy)
			case msgSent:
				a.Unacked++
				if r.grp.anyDelivered() {
					a.UnackedDelivered++
				}
			case msgRefused:
				if r.grp.anyDelivered() {
					a.UnackedDelivered++
				}
			}
			continue
		}
		dlv := r.delivered.Load()
		a.Unexpected += uint64(bits.OnesCount64(dlv &^ r.expected))
		switch r.state.Load() {
		case msgAcked:
			a.Acked++
			a.Expected += uint64(bits.OnesCount64(r.expected))
			a.Delivered += uint64(bits.OnesCount64(r.expected & dlv))
			missing := r.expected &^ dlv
			if missing != 0 {
				gone := missing & droppedMask(r)
				a.ExcludedDropped += uint64(bits.OnesCount64(gone))
				a.Lost += uint64(bits.OnesCount64(missing &^ gone))
			}
		case msgSent:
			a.Unacked++
			if dlv != 0 {
				a.UnackedDelivered++
			}
		case msgRefused:
			if dlv != 0 {
				a.UnackedDelivered++
			}
		}
	}
	a.LossyDevices = uint64(len(lossy))
	return a
}

// deliver records a delivery of r to the device bit; it reports whether it was a duplicate.
func (r *msgRec) deliver(bit uint64) (dup bool) {
	if r.delivered.Or(bit)&bit != 0 {
		r.dups.Add(1)
		return true
	}
	return false
}
