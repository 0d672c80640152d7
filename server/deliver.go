package server

import (
	"strconv"
	"sync"
	"time"

	"imgate/codec"
	"imgate/message"
)

// outBatch gathers frames for several loops so that each loop is locked and woken once.
// A node has a few loops, so a linear search beats a map; batches are pooled.
type outBatch struct {
	loops   []*loop
	tasks   [][]task
	offline []message.Offline // recipients without a device (noteOffline); handed off, not pooled
}

var outBatches = sync.Pool{New: func() any { return new(outBatch) }}

// add queues frame for c; seq is the inbox seq it carries (0 for ACKs, receipts, errors).
func (b *outBatch) add(c *conn, frame []byte, seq int64) {
	b.addTask(task{c: c, frame: frame, seq: seq})
}

// addTask queues t for its connection's loop.
func (b *outBatch) addTask(t task) {
	c := t.c
	for i, l := range b.loops {
		if l == c.loop {
			b.tasks[i] = append(b.tasks[i], t)
			return
		}
	}
	b.loops = append(b.loops, c.loop)
	if len(b.tasks) < cap(b.tasks) {
		b.tasks = b.tasks[:len(b.tasks)+1]
	} else {
		b.tasks = append(b.tasks, nil)
	}
	i := len(b.tasks) - 1
	b.tasks[i] = append(b.tasks[i][:0], t)
}

// flush pushes every loop's tasks and returns b to the pool.
func (b *outBatch) flush() {
	for i, l := range b.loops {
		l.push(b.tasks[i])
		clear(b.tasks[i])
		b.tasks[i] = b.tasks[i][:0]
	}
	clear(b.loops)
	b.loops = b.loops[:0]
	b.tasks = b.tasks[:0]
	outBatches.Put(b)
}

// Saved pushes persisted messages to the local devices of their receivers and senders
// and acknowledges the senders connected to this node. Duplicates are acknowledged
// again and delivered to nobody; SIGNED receipts are delivered and not acknowledged. Any
// goroutine may call it; it never blocks on a connection. It implements message.Sink.
func (s *Server) Saved(batch []message.Saved) {
	out := outBatches.Get().(*outBatch)
	now := time.Now() // one clock read per batch for the latency of its ACKs
	for i := range batch {
		s.route(out, &batch[i], now)
	}
	offline := out.offline
	out.offline = nil
	out.flush()
	if len(offline) > 0 {
		s.offline.Enqueue(offline)
	}
}

// noteOffline records that user, a recipient of m persisted at seq in user's inbox,
// has no device here, for the offline hook (which recipients count:
// message.NotifiesOffline). A group's route calls it once per member without a device.
func (s *Server) noteOffline(out *outBatch, user string, seq int64, m *codec.ChatMsg) {
	if s.offline == nil || !message.NotifiesOffline(user, seq, m) {
		return
	}
	out.offline = append(out.offline, message.Offline{UserID: user, Seq: seq, Msg: *m})
}

// msgNotMember is the text of ERROR forbidden for a group message of a non-member,
// whether the node's cache or the saver refused it.
const msgNotMember = "not a member of this group"

func (s *Server) route(out *outBatch, sv *message.Saved, now time.Time) {
	m := &sv.Msg
	var origin *conn
	if sv.Node == s.cfg.NodeID && sv.SenderConn != 0 {
		origin = s.sessions.device(m.SenderID, sv.SenderConn)
	}
	if sv.Broadcast {
		s.broadcast(out, sv)
		return
	}
	if sv.Forbidden {
		if s.groups != nil && sv.Node == s.cfg.NodeID {
			s.groups.refusedByStore(m.GroupID, m.SenderID)
		}
		if origin != nil {
			out.add(origin, appendErrorFrame(nil, m.ClientMsgID, codec.CodeForbidden, msgNotMember), 0)
		}
		return
	}
	if m.MsgType != codec.Signed && origin != nil {
		ack := appendEnvelopeFrame(make([]byte, 0, 160+len(m.SenderID)+len(m.ReceiverID)+len(m.GroupID)+len(m.ClientMsgID)), &codec.Envelope{ChatMsg: &codec.ChatMsg{
			SenderID:    m.SenderID,
			ReceiverID:  m.ReceiverID,
			GroupID:     m.GroupID,
			MsgType:     codec.Ack,
			MsgID:       m.MsgID,
			ClientMsgID: m.ClientMsgID,
			ChatTime:    m.ChatTime,
		}})
		s.stats.persisted.observe(now.Sub(m.ChatTime))
		out.addTask(task{c: origin, frame: ack, accepted: acceptStamp(m.ChatTime)})
	}
	if sv.Duplicate {
		return
	}
	s.stats.delivered.Add(1)
	if m.GroupID != "" {
		s.routeGroup(out, sv, origin)
		return
	}
	// The receiver's devices get the message with the receiver's seq, the sender's other
	// devices with the sender's; each frame is encoded once and shared.
	var skipR, skipS bool
	if s.gaps != nil && m.MsgType != codec.Signed {
		var hold bool
		if hold, skipR = s.gaps.seen(m.ReceiverID, sv.ReceiverSeq); hold {
			s.holdDevices(out, m.ReceiverID, sv.ReceiverSeq)
		}
		if m.SenderID != m.ReceiverID {
			if hold, skipS = s.gaps.seen(m.SenderID, sv.SenderSeq); hold {
				s.holdDevices(out, m.SenderID, sv.SenderSeq)
			}
		}
	}
	var rframe []byte
	rdevs := s.sessions.devices(m.ReceiverID)
	if len(rdevs) == 0 {
		s.noteOffline(out, m.ReceiverID, sv.ReceiverSeq, m)
	}
	for _, d := range rdevs {
		if skipR {
			break
		}
		if d == origin {
			continue
		}
		if rframe == nil {
			rframe = appendDelivery(nil, m, sv.ReceiverSeq, sv.SenderConn)
		}
		out.add(d, rframe, sv.ReceiverSeq)
	}
	if m.SenderID == m.ReceiverID {
		return
	}
	var sframe []byte
	for _, d := range s.sessions.devices(m.SenderID) {
		if skipS {
			break
		}
		if d == origin {
			continue
		}
		if sframe == nil {
			sframe = appendDelivery(nil, m, sv.SenderSeq, sv.SenderConn)
		}
		out.add(d, sframe, sv.SenderSeq)
	}
}

// routeGroup delivers a group message to the devices here of every recipient it names
// (the saver sends a node only the members with a device there), each with that
// member's seq, except the sending connection.
func (s *Server) routeGroup(out *outBatch, sv *message.Saved, origin *conn) {
	m := &sv.Msg
	for _, ms := range sv.Members {
		if s.gaps != nil {
			hold, skip := s.gaps.seen(ms.User, ms.Seq)
			if hold {
				s.holdDevices(out, ms.User, ms.Seq)
			}
			if skip {
				continue
			}
		}
		devs := s.sessions.devices(ms.User)
		if len(devs) == 0 {
			s.noteOffline(out, ms.User, ms.Seq, m)
		}
		var frame []byte
		for _, d := range devs {
			if d == origin {
				continue
			}
			if frame == nil {
				frame = appendDelivery(nil, m, ms.Seq, sv.SenderConn)
			}
			out.add(d, frame, ms.Seq)
		}
	}
}

// broadcast delivers a live-only message to every bound connection here, once: one
// frame, no seq (it is outside every inbox, so no replay holds it back).
func (s *Server) broadcast(out *outBatch, sv *message.Saved) {
	frame := appendDelivery(nil, &sv.Msg, 0, 0)
	s.sessions.each(func(c *conn) { out.add(c, frame, 0) })
}

// holdDevices queues a gap hold for every device of user here, ahead of the frame with
// seq that opened the gap (hold.go).
func (s *Server) holdDevices(out *outBatch, user string, seq int64) {
	for _, d := range s.sessions.devices(user) {
		out.addTask(task{c: d, kind: taskHold, seq: seq})
	}
}

// Failed answers the local senders of recs with ERROR unavailable: their messages were
// not persisted (or, err says, not answered in time: they may be stored yet, and a resend
// with the same clientMsgId gets their msgId). It implements message.Sink.
func (s *Server) Failed(recs []message.Record, err error) {
	s.log.Warn("messages failed; their senders get ERROR unavailable", "count", len(recs), "err", err)
	out := outBatches.Get().(*outBatch)
	for i := range recs {
		r := &recs[i]
		if r.Node != s.cfg.NodeID {
			continue
		}
		if c := s.sessions.device(r.Msg.SenderID, r.SenderConn); c != nil {
			s.countError(codec.CodeUnavailable)
			out.add(c, appendErrorFrame(nil, r.Msg.ClientMsgID, codec.CodeUnavailable, "store unavailable, retry later with the same clientMsgId"), 0)
		}
	}
	out.flush()
}

// appendDelivery appends the text frame of a delivered message. With a nil dst it
// allocates once, sized for the message (escapes aside).
func appendDelivery(dst []byte, m *codec.ChatMsg, seq int64, senderConn uint64) []byte {
	if dst == nil {
		dst = make([]byte, 0, 212+len(m.SenderID)+len(m.ReceiverID)+len(m.Msg)+len(m.ClientMsgID)+len(m.Extra))
	}
	cm := *m
	cm.Seq = seq
	var extend string
	if senderConn != 0 {
		extend = strconv.FormatUint(senderConn, 10)
	}
	return appendEnvelopeFrame(dst, &codec.Envelope{ChatMsg: &cm, Extend: extend})
}

// appendErrorFrame appends the text frame of an ERROR envelope.
func appendErrorFrame(dst []byte, clientMsgID, code, text string) []byte {
	return appendEnvelopeFrame(dst, &codec.Envelope{
		ChatMsg: &codec.ChatMsg{MsgType: codec.Error, ClientMsgID: clientMsgID},
		Error:   &codec.ErrorBody{Code: code, Message: text},
	})
}
