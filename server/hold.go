package server

import (
	"cmp"
	"slices"
)

// A connection that is replaying (CONNECT_INIT with or without a cursor, until its ACK)
// must not be written a live message before the lower seqs the replay still owes
// (PROTOCOL §5: the seqs one connection receives only increase). Live frames with a seq
// addressed to it are therefore held on its loop while the replay runs, and released
// after the ACK, in seq order, without the ones the replay already covered. The replay
// reads up to the newest seq it saw before it began, and presence is visible before that
// read (Presence.Sync), so every message is either replayed or arrives live afterwards.
//
// A cluster node holds live frames the same way while it repairs a delivery gap of a
// user (gaps.go): the delivery that opens the gap is held on every device of the user
// here, behind a taskHold carrying its seq; the repair's frames are written, then a
// taskRelease lets the held ones follow in order. So a device never sees seq N+k before
// the N+1 it was owed. Gaps of one user can overlap (two savers publish independently):
// a second gap may open while the first one's repair runs. The hold therefore lasts
// until a repair reaches the highest seq any of its taskHolds carried (hold.until); an
// earlier release writes only the held frames that follow the last seq written without
// a hole, and keeps the rest for the later repair. A gap hold remembers the highest seq
// written to the connection during it (hold.written): a repair frame at or below it was
// written already (released, or by an earlier repair) and is dropped.
//
// Held frames count against MaxOutboundBytes: a connection whose held frames pass it is
// closed with 1013 and replays again from its cursor when it reconnects.

// taskOrder says how drain orders a frame against a connection's replay.
type taskOrder uint8

const (
	orderLive      taskOrder = iota // held while the connection replays (when seq > 0)
	orderReplay                     // part of the replay: written at once
	orderReplayEnd                  // the init ACK: written, then the held frames after it
	orderRepair                     // a gap repair: written during a gap hold, held during a replay
)

// hold is the replay state of one connection, owned by its loop.
type hold struct {
	frames []task
	bytes  int
	gap    bool  // held for a gap repair, not for a CONNECT_INIT replay
	until  int64 // a gap hold ends with a repair up to at least this seq
	// written is, in a gap hold, the highest seq written to the connection since the
	// hold began (a repair's frames and its release's seq), 0 before the first repair.
	written int64
}

// startHold marks c as replaying; it runs on c's loop before the replay job is queued.
func (l *loop) startHold(c *conn) {
	if l.holds == nil {
		l.holds = make(map[*conn]*hold)
	}
	l.holds[c] = &hold{}
}

// startGapHold holds c's live frames for a gap repair that covers seq, unless c already
// holds for a CONNECT_INIT (its replay covers more and ends with its own ACK). A gap hold
// that exists already now also waits for seq.
func (l *loop) startGapHold(c *conn, seq int64) {
	if h := l.holds[c]; h != nil {
		if h.gap {
			h.until = max(h.until, seq)
		}
		return
	}
	l.startHold(c)
	l.holds[c].gap = true
	l.holds[c].until = seq
}

// releaseGap follows a repair up to seq written to c. Below the hold's until (another
// gap's repair is still to come) it writes only the held frames that continue the seqs
// written without a hole; from until on it ends the hold: the held frames above what
// was written follow in order. A CONNECT_INIT hold is left to its ACK.
func (l *loop) releaseGap(c *conn, seq int64, out [][]byte) [][]byte {
	h := l.holds[c]
	if h == nil || !h.gap {
		return out
	}
	h.written = max(h.written, seq)
	if seq >= h.until {
		return l.release(c, h, h.written, out)
	}
	slices.SortStableFunc(h.frames, func(a, b task) int { return cmp.Compare(a.seq, b.seq) })
	n := 0
	for _, f := range h.frames {
		if f.seq > h.written+1 {
			break
		}
		if f.seq == h.written+1 {
			out = append(out, f.frame)
			h.written = f.seq
		}
		h.bytes -= len(f.frame)
		n++
	}
	clear(h.frames[:n])
	h.frames = h.frames[n:]
	return out
}

// dropHold forgets c's replay state (the connection is gone). It runs on the loop.
func (l *loop) dropHold(c *conn) { delete(l.holds, c) }

// order decides, on the loop, what becomes of task t in drain: it reports the frames to
// write for t (t's own, or after an init ACK also the released ones) and whether c must
// be closed because its held frames passed the bound.
func (l *loop) order(t *task, out [][]byte) ([][]byte, bool) {
	h := l.holds[t.c]
	if h == nil {
		// Not replaying: frames are written as they come. A repair (orderRepair) without
		// a hold cannot happen: its gap hold was queued before the repair was scheduled.
		return append(out, t.frame), false
	}
	switch t.order {
	case orderLive:
		if t.seq <= 0 {
			return append(out, t.frame), false
		}
		h.frames = append(h.frames, *t)
		h.bytes += len(t.frame)
		return out, h.bytes > l.srv.cfg.MaxOutboundBytes
	case orderReplay:
		return append(out, t.frame), false
	case orderRepair:
		if h.gap {
			if t.seq <= h.written {
				return out, false
			}
			h.written = t.seq
			return append(out, t.frame), false
		}
		h.frames = append(h.frames, *t)
		h.bytes += len(t.frame)
		return out, h.bytes > l.srv.cfg.MaxOutboundBytes
	}
	// orderReplayEnd: t.seq is the newest seq the replay covered.
	out = append(out, t.frame)
	return l.release(t.c, h, t.seq, out), false
}

// release writes h's frames above seq in seq order and ends the hold.
func (l *loop) release(c *conn, h *hold, seq int64, out [][]byte) [][]byte {
	slices.SortStableFunc(h.frames, func(a, b task) int { return cmp.Compare(a.seq, b.seq) })
	last := seq
	for _, f := range h.frames {
		if f.seq > last {
			out = append(out, f.frame)
			last = f.seq
		}
	}
	delete(l.holds, c)
	return out
}
