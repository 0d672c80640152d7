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
// here, behind a taskHold; the repair's frames are written, then a taskRelease lets the
// held ones follow in order. So a device never sees seq N+k before the N+1 it was owed.
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
	gap    bool // held for a gap repair, not for a CONNECT_INIT replay
}

// startHold marks c as replaying; it runs on c's loop before the replay job is queued.
func (l *loop) startHold(c *conn) {
	if l.holds == nil {
		l.holds = make(map[*conn]*hold)
	}
	l.holds[c] = &hold{}
}

// startGapHold holds c's live frames for a gap repair, unless c already holds (a
// CONNECT_INIT replay covers more and ends with its own ACK).
func (l *loop) startGapHold(c *conn) {
	if l.holds[c] != nil {
		return
	}
	l.startHold(c)
	l.holds[c].gap = true
}

// releaseGap ends c's gap hold after a repair up to seq: the held frames above seq
// follow in order. A CONNECT_INIT hold is left to its ACK.
func (l *loop) releaseGap(c *conn, seq int64, out [][]byte) [][]byte {
	h := l.holds[c]
	if h == nil || !h.gap {
		return out
	}
	return l.release(c, h, seq, out)
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
