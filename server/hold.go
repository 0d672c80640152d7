package server

import "slices"

// A connection that is replaying (CONNECT_INIT with or without a cursor, until its ACK)
// must not be written a live message before the lower seqs the replay still owes
// (PROTOCOL §5: the seqs one connection receives only increase). Live frames with a seq
// addressed to it are therefore held on its loop while the replay runs, and released
// after the ACK, in seq order, without the ones the replay already covered. The replay
// reads up to the newest seq it saw before it began, and presence is visible before that
// read (Presence.Sync), so every message is either replayed or arrives live afterwards.
//
// Held frames count against MaxOutboundBytes: a connection whose held frames pass it is
// closed with 1013 and replays again from its cursor when it reconnects.

// taskOrder says how drain orders a frame against a connection's replay.
type taskOrder uint8

const (
	orderLive      taskOrder = iota // held while the connection replays (when seq > 0)
	orderReplay                     // part of the replay: written at once
	orderReplayEnd                  // the init ACK: written, then the held frames after it
)

// hold is the replay state of one connection, owned by its loop.
type hold struct {
	frames []task
	bytes  int
}

// startHold marks c as replaying; it runs on c's loop before the replay job is queued.
func (l *loop) startHold(c *conn) {
	if l.holds == nil {
		l.holds = make(map[*conn]*hold)
	}
	l.holds[c] = &hold{}
}

// dropHold forgets c's replay state (the connection is gone). It runs on the loop.
func (l *loop) dropHold(c *conn) { delete(l.holds, c) }

// order decides, on the loop, what becomes of task t in drain: it reports the frames to
// write for t (t's own, or after an init ACK also the released ones) and whether c must
// be closed because its held frames passed the bound.
func (l *loop) order(t *task, out [][]byte) ([][]byte, bool) {
	h := l.holds[t.c]
	if h == nil {
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
	}
	// orderReplayEnd: t.seq is the newest seq the replay covered.
	out = append(out, t.frame)
	slices.SortStableFunc(h.frames, func(a, b task) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	last := t.seq
	for _, f := range h.frames {
		if f.seq > last {
			out = append(out, f.frame)
			last = f.seq
		}
	}
	delete(l.holds, t.c)
	return out, false
}
