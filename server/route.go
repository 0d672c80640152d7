package server

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"imgate/codec"
	"imgate/message"
)

// Field limits for what clients send.
const (
	maxUserIDBytes = message.MaxUserID
)

// message handles one complete text message of c. It runs on the loop.
func (s *Server) message(c *conn, payload []byte) {
	env, err := codec.DecodeEnvelope(payload)
	if c.state == stateAwaitInit {
		s.connectInit(c, env, err)
		return
	}
	if err != nil {
		code := codec.CodeBadJSON
		var de *codec.DecodeError
		if errors.As(err, &de) {
			code = de.Code
		}
		s.replyError(c, "", code, err.Error())
		return
	}
	cm := env.ChatMsg
	if cm == nil {
		s.replyError(c, "", codec.CodeBadRequest, "chatMsg is required")
		return
	}
	if (cm.MsgType.IsContent() || cm.MsgType == codec.Signed) && !s.spend(c, cm.ClientMsgID) {
		return
	}
	switch {
	case cm.MsgType.IsContent():
		s.content(c, cm)
	case cm.MsgType == codec.Keepalive:
		l := c.loop
		l.out = appendEnvelopeFrame(l.out, &codec.Envelope{ChatMsg: &codec.ChatMsg{MsgType: codec.Keepalive}})
	case cm.MsgType == codec.Signed:
		s.signed(c, cm)
	case cm.MsgType == codec.ConnectInit:
		s.replyError(c, cm.ClientMsgID, codec.CodeBadRequest, "connection is already bound")
	default:
		s.replyError(c, cm.ClientMsgID, codec.CodeBadType, "msgType not accepted from clients")
	}
}

// connectInit handles the first message of c: a valid CONNECT_INIT binds c to its user,
// anything else closes c with 4400.
func (s *Server) connectInit(c *conn, env *codec.Envelope, err error) {
	l := c.loop
	s.initDone(c)
	if err != nil || env.ChatMsg == nil || env.ChatMsg.MsgType != codec.ConnectInit {
		l.closeConn(c, closeBadInit)
		return
	}
	user := env.ChatMsg.SenderID
	if !validID(user) || (env.Cursor != nil && *env.Cursor < 0) {
		l.closeConn(c, closeBadInit)
		return
	}
	if s.cfg.Auth != nil {
		if err := s.cfg.Auth.Verify(user, env.Token); err != nil {
			l.closeConn(c, closeUnauthorized)
			return
		}
	}
	c.user = user
	c.state = stateBound
	c.timer = l.now
	c.tokens = float32(s.cfg.RateBurst)
	s.bind(c)
	if s.inbox == nil {
		l.out = s.appendInitAck(l.out, c, 0, false)
		return
	}
	job := replayJob{c: c, user: user}
	if env.Cursor != nil {
		job.cursor, job.replay = *env.Cursor, true
	}
	// Live frames wait until the replay and its ACK are written (hold.go).
	l.startHold(c)
	if !s.replays.submit(job) {
		l.closeConn(c, closeTryLater)
	}
}

// content accepts a content message of c: it assigns msgId and chatTime and hands the
// message to the outbox. The ACK is sent when the message comes back persisted.
func (s *Server) content(c *conn, cm *codec.ChatMsg) {
	if cm.SenderID != c.user {
		s.replyError(c, cm.ClientMsgID, codec.CodeForbidden, "senderId is not the user of this connection")
		return
	}
	switch {
	case cm.ReceiverID != "" && cm.GroupID != "":
		s.replyError(c, cm.ClientMsgID, codec.CodeBadRequest, "receiverId and groupId exclude each other")
		return
	case cm.GroupID != "":
		if len(cm.GroupID) > maxUserIDBytes {
			s.replyError(c, cm.ClientMsgID, codec.CodeBadRequest, "groupId is at most 128 bytes")
			return
		}
		if s.outbox == nil {
			// Membership lives in the store: without one there are no groups.
			s.replyError(c, cm.ClientMsgID, codec.CodeBadRequest, "groups need a message store (--store)")
			return
		}
	case cm.ReceiverID == "" || len(cm.ReceiverID) > maxUserIDBytes:
		s.replyError(c, cm.ClientMsgID, codec.CodeBadRequest, "receiverId or groupId is required (at most 128 bytes)")
		return
	}
	if cm.Msg == "" {
		s.replyError(c, cm.ClientMsgID, codec.CodeBadRequest, "msg is required")
		return
	}
	msg := *cm
	msg.MsgID = s.ids.Next()
	msg.ChatTime = time.UnixMilli(time.Now().UnixMilli()).UTC()
	msg.Seq = 0
	rec := message.Record{Msg: msg, SenderConn: c.id, Node: s.cfg.NodeID}
	if err := rec.Validate(); err != nil {
		// A store refuses such a record (NUL bytes, say): answering it here keeps one bad
		// message from failing the batch it would travel in.
		s.replyError(c, cm.ClientMsgID, codec.CodeBadRequest, "message refused: fields must be UTF-8 text without NUL")
		return
	}
	// Checked once the message is valid, so that a bad groupId queues no store read.
	if cm.GroupID != "" && s.groups != nil && s.groups.check(cm.GroupID, c.user, msg.ChatTime) == groupNonMember {
		s.replyError(c, cm.ClientMsgID, codec.CodeForbidden, msgNotMember)
		return
	}
	if err := s.submit(rec); err != nil {
		s.stats.refused.Add(1)
		s.replyError(c, cm.ClientMsgID, codec.CodeUnavailable, "message not accepted, retry later with the same clientMsgId")
		return
	}
	s.stats.accepted.Add(1)
}

// The kinds of a SIGNED receipt, in its msg (docs/protocol.md): the message reached a
// device, or was shown on one. A receipt without msg means "read" (the original system's
// SIGNED: a device shows the message).
const (
	ReceiptDelivered = "delivered"
	ReceiptRead      = "read"
)

// signed passes a SIGNED receipt on to the original sender's devices (receiverId) and
// to the signer's other devices. Receipts are live only: they are not persisted.
//
// Only the receipt's own fields go on (senderId, receiverId, msgType, msgId,
// clientMsgId, a server chatTime, and msg when it is exactly ReceiptDelivered or
// ReceiptRead): never other text or unknown members, so a receipt cannot carry content
// to a user who did not choose to talk with the signer.
//
// msgId is not checked against the store (that the message exists and is between the
// two users): that would be a store read per receipt on the event loop, or a hop off it
// for every receipt, and a receipt is a live-only hint. A forged one can only tell its
// receiver that the signer (the authenticated senderId, never spoofed) "read" some
// message id: it carries no content and changes no stored state. A client should ignore
// a receipt for a msgId it did not send to that user (docs/protocol.md, SIGNED).
func (s *Server) signed(c *conn, cm *codec.ChatMsg) {
	if cm.SenderID != c.user {
		s.replyError(c, cm.ClientMsgID, codec.CodeForbidden, "senderId is not the user of this connection")
		return
	}
	if cm.ReceiverID == "" || len(cm.ReceiverID) > maxUserIDBytes || cm.MsgID == 0 {
		s.replyError(c, cm.ClientMsgID, codec.CodeBadRequest, "SIGNED needs receiverId (the original sender) and msgId")
		return
	}
	msg := codec.ChatMsg{
		SenderID: cm.SenderID, ReceiverID: cm.ReceiverID, MsgType: codec.Signed, MsgID: cm.MsgID,
		ClientMsgID: cm.ClientMsgID, ChatTime: time.UnixMilli(time.Now().UnixMilli()).UTC(),
	}
	if cm.Msg == ReceiptDelivered || cm.Msg == ReceiptRead {
		msg.Msg = cm.Msg // the receipt's kind; any other text is content and is dropped
	}
	rec := message.Record{Msg: msg, SenderConn: c.id, Node: s.cfg.NodeID}
	if err := rec.Validate(); err != nil {
		s.replyError(c, cm.ClientMsgID, codec.CodeBadRequest, "receipt refused: fields must be UTF-8 text without NUL")
		return
	}
	if err := s.relayReceipt(rec); err != nil {
		s.replyError(c, cm.ClientMsgID, codec.CodeUnavailable, "receipt not accepted, retry later")
	}
}

// submit hands an accepted content message to the outbox, or without one delivers it
// at once, with no seq.
func (s *Server) submit(rec message.Record) error {
	if s.outbox == nil {
		return s.deliverHere(rec)
	}
	return s.outbox.Submit(rec)
}

// relayReceipt hands a SIGNED receipt to the relay, or without one delivers it on this
// node.
func (s *Server) relayReceipt(rec message.Record) error {
	if s.relay == nil {
		return s.deliverHere(rec)
	}
	return s.relay.Relay(rec)
}

// deliverHere delivers rec on this node as if it came back persisted, with no seq.
func (s *Server) deliverHere(rec message.Record) error {
	s.Saved([]message.Saved{{Record: rec}})
	return nil
}

// refill adds the tokens earned since the client's previous frame and records this
// frame's time. It runs on the loop.
func (s *Server) refill(c *conn, now int64) {
	if s.cfg.RateLimit > 0 {
		earned := float64(now-c.timer) / 1e9 * s.cfg.RateLimit
		c.tokens = float32(min(float64(c.tokens)+earned, float64(s.cfg.RateBurst)))
	}
	c.timer = now
}

// spend takes one token for a message of c. Over the limit it answers ERROR
// rate_limited and reports false; when the debt reaches the burst it closes c with 4429.
func (s *Server) spend(c *conn, clientMsgID string) bool {
	if s.cfg.RateLimit == 0 {
		return true
	}
	c.tokens--
	if c.tokens >= 0 {
		return true
	}
	if c.tokens <= -float32(s.cfg.RateBurst) {
		c.loop.closeConn(c, closeRateLimited)
		return false
	}
	s.replyError(c, clientMsgID, codec.CodeRateLimited, "rate limit exceeded, slow down")
	return false
}

// replyError queues an ERROR envelope for c. It runs on the loop. Every ERROR but
// rate_limited (already paid for) costs a rate-limit token: a client cannot make the node
// answer garbage for free.
func (s *Server) replyError(c *conn, clientMsgID, code, text string) {
	l := c.loop
	if code != codec.CodeRateLimited && s.cfg.RateLimit > 0 {
		c.tokens--
		if c.tokens <= -float32(s.cfg.RateBurst) {
			l.closeConn(c, closeRateLimited)
			return
		}
	}
	s.countError(code)
	l.out = appendErrorFrame(l.out, clientMsgID, code, text)
}

// validID reports whether a user id is acceptable: not empty, at most maxUserIDBytes,
// UTF-8 without NUL (what every store can keep).
func validID(id string) bool {
	return id != "" && len(id) <= maxUserIDBytes && utf8.ValidString(id) && !strings.ContainsRune(id, 0)
}
