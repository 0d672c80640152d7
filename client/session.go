package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"imgate/codec"
)

// Reasons a session ends that the Client decides itself.
var (
	errCursorReset = errors.New("client: cursorAhead: the node's inbox is behind this device's cursor, starting over from 0")
	errOverflow    = errors.New("client: OnMessage fell a whole queue behind")
)

// runner is the state of Run's goroutine that outlives one connection.
type runner struct {
	c    *Client
	bo   backoff
	seen *seenSet // msgIds delivered, queued or acknowledged: duplicates are dropped
	// cursor is the highest seq received and queued (or dropped as a duplicate): the
	// cursor of the next CONNECT_INIT. It is ahead of the stored cursor by what the handlers
	// have not yet handled; those messages are in the queue and in seen, so a replay of them
	// is dropped. hasCursor is false for a new device until its first ACK.
	cursor    int64
	hasCursor bool
	epoch     uint64 // Client.epoch as the reader knows it (only the reader changes it)
	// overflowed: the queue filled up on this connection. Content messages and receipts are
	// left out from then on (the cursor stays before them) while ACKs and ERRORs are still
	// read, until the handler goroutine, caught up, ends the connection.
	overflowed bool
	wc         *wsConn // the current connection
}

// sessionEnd is how one connection ended.
type sessionEnd struct {
	err   error
	bound time.Duration // how long it was bound; 0 if it never was
}

// session runs one connection: pick, dial, CONNECT_INIT, then read until it ends.
func (r *runner) session(ctx context.Context) sessionEnd {
	c := r.c
	c.setState(StateConnecting, nil)
	c.stats.connects.Add(1)
	r.overflowed = false
	target, init, err := r.prepare(ctx)
	if err != nil {
		return sessionEnd{err: err}
	}
	wc, err := dialWS(ctx, &c.cfg, target)
	if err != nil {
		return sessionEnd{err: err}
	}
	r.wc = wc
	var kaWG sync.WaitGroup
	kaStop := make(chan struct{})
	defer func() {
		close(kaStop)
		wc.abort() // unblocks a keepalive write
		kaWG.Wait()
	}()
	// Close and Run's context end the connection with 1000 and unblock the reader.
	stop := context.AfterFunc(ctx, func() {
		_ = wc.closeWith(ws.StatusNormalClosure, "")
		wc.abort()
	})
	defer stop()
	if err := wc.write(ws.OpText, init); err != nil {
		return sessionEnd{err: fmt.Errorf("client: write CONNECT_INIT: %w", err)}
	}
	c.log.Debug("connected, CONNECT_INIT sent", "url", target, "cursor", r.cursor, "hasCursor", r.hasCursor)

	var boundAt time.Time
	for {
		timeout := c.cfg.ConnectTimeout
		if !boundAt.IsZero() {
			timeout += 2 * c.cfg.KeepaliveInterval
		}
		p, err := wc.next(time.Now().Add(timeout))
		if err == nil {
			var env *codec.Envelope
			env, err = codec.DecodeEnvelope(p)
			if err != nil {
				c.log.Warn("unreadable envelope from the node", "err", err)
				continue
			}
			if boundAt.IsZero() && env.ChatMsg.MsgType == codec.Ack && env.ChatMsg.MsgID == 0 {
				if err = r.bind(wc, env); err == nil {
					boundAt = time.Now()
					kaWG.Add(1)
					go func() {
						defer kaWG.Done()
						r.keepalive(wc, kaStop)
					}()
					continue
				}
			} else {
				err = r.dispatch(env)
			}
		}
		if err == nil {
			continue
		}
		c.mu.Lock()
		if c.conn == wc {
			c.conn = nil
		}
		c.mu.Unlock()
		var ce *CloseError
		if errors.As(err, &ce) && ce.Code == int(ws.StatusMessageTooBig) {
			c.failTooLarge(wc)
		}
		if errors.Is(err, errCursorReset) {
			_ = wc.closeWith(ws.StatusNormalClosure, "")
		}
		if r.overflowed {
			c.overflowed.CompareAndSwap(wc, nil)
			err = fmt.Errorf("%w (%v)", errOverflow, err)
		}
		end := sessionEnd{err: err}
		if !boundAt.IsZero() {
			end.bound = time.Since(boundAt)
		}
		return end
	}
}

// prepare picks the URL and builds CONNECT_INIT (with the token and the cursor).
func (r *runner) prepare(ctx context.Context) (target string, init []byte, err error) {
	c := r.c
	target = c.cfg.URL
	if c.cfg.Dispatcher != "" {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
		target, err = Pick(pctx, c.cfg.HTTPClient, c.cfg.Dispatcher, c.cfg.UserID)
		cancel()
		if err != nil {
			return "", nil, err
		}
	}
	var tok string
	if c.cfg.Token != nil {
		if tok, err = c.cfg.Token(ctx); err != nil {
			return "", nil, fmt.Errorf("client: token: %w", err)
		}
	}
	env := codec.Envelope{ChatMsg: &codec.ChatMsg{SenderID: c.cfg.UserID, MsgType: codec.ConnectInit}}
	if !r.hasCursor && c.cfg.ReplayAll {
		r.cursor, r.hasCursor = 0, true
	}
	if r.hasCursor {
		cur := r.cursor
		env.Cursor = &cur
	}
	init = codec.AppendEnvelope(nil, &env)
	if tok != "" {
		// The encoder never writes a token (it is the node's; PROTOCOL §7): the one
		// envelope that carries one is added here, top-level.
		init = codec.AppendString(append(init[:len(init)-1], `,"token":`...), tok)
		init = append(init, '}')
	}
	return target, init, nil
}

// bind handles the ACK of CONNECT_INIT: the replay is done, the connection is live. It
// writes again the messages still waiting for their ACK.
func (r *runner) bind(wc *wsConn, env *codec.Envelope) error {
	c := r.c
	c.stats.binds.Add(1)
	newest := env.ChatMsg.Seq
	if env.CursorAhead {
		c.log.Warn("cursor ahead of the node's inbox (reset store?): starting over from 0", "cursor", r.cursor, "newest", newest)
		r.cursor, r.hasCursor = 0, true
		// Stored now, not through the queue (a full queue must not block the reader); the
		// items still queued from before belong to the old numbering and store nothing.
		c.storeCursor(0, 0, true)
		r.epoch++
		return errCursorReset
	}
	if !r.hasCursor {
		// A new device asked for no replay: it starts from the inbox as it is now.
		r.advance(newest)
		r.hasCursor = true
	}
	c.mu.Lock()
	c.conn = wc
	c.compactLocked()
	resend := slices.Clone(c.order)
	var again int
	for _, p := range resend {
		if p.conn != nil {
			again++
		}
		p.conn = wc
	}
	c.mu.Unlock()
	c.setState(StateConnected, nil)
	c.log.Info("bound", "newest", newest, "cursor", r.cursor, "resending", len(resend))
	c.stats.resent.Add(int64(again))
	for _, p := range resend {
		if err := wc.write(ws.OpText, p.frame); err != nil {
			return fmt.Errorf("client: resend: %w", err)
		}
	}
	return nil
}

// dispatch handles one envelope on a bound connection (or a replayed message before it).
func (r *runner) dispatch(env *codec.Envelope) error {
	c := r.c
	cm := env.ChatMsg
	switch {
	case cm.MsgType.IsContent():
		return r.content(env)
	case cm.MsgType == codec.Ack:
		if cm.ClientMsgID != "" && c.resolve(cm.ClientMsgID, result{ack: Ack{MsgID: cm.MsgID, ClientMsgID: cm.ClientMsgID, ChatTime: cm.ChatTime}}) {
			r.seen.add(cm.MsgID) // our own message, should it come back in a replay
		}
	case cm.MsgType == codec.Error:
		se := &ServerError{ClientMsgID: cm.ClientMsgID}
		if env.Error != nil {
			se.Code, se.Message = env.Error.Code, env.Error.Message
		}
		if cm.ClientMsgID == "" || !c.resolve(cm.ClientMsgID, result{err: se}) {
			c.log.Warn("ERROR from the node for no pending message", "code", se.Code, "message", se.Message, "clientMsgId", cm.ClientMsgID)
		}
	case cm.MsgType == codec.Signed:
		if r.overflowed {
			c.stats.dropped.Add(1)
			return nil
		}
		it := item{kind: itemReceipt, cursor: r.cursor, hasCursor: r.hasCursor, epoch: r.epoch, receipt: Receipt{
			SignerID: cm.SenderID, ReceiverID: cm.ReceiverID, MsgID: cm.MsgID, ClientMsgID: cm.ClientMsgID, ChatTime: cm.ChatTime,
		}}
		select {
		case c.queue <- it:
		default:
			c.stats.dropped.Add(1) // live-only hints: dropping one loses no message
		}
	case cm.MsgType == codec.Keepalive:
	default:
		c.log.Debug("ignored message type", "msgType", cm.MsgType)
	}
	return nil
}

// content handles a delivered or replayed content message.
func (r *runner) content(env *codec.Envelope) error {
	c := r.c
	cm := env.ChatMsg
	if cm.SenderID == c.cfg.UserID && cm.ClientMsgID != "" &&
		c.resolve(cm.ClientMsgID, result{ack: Ack{MsgID: cm.MsgID, ClientMsgID: cm.ClientMsgID, ChatTime: cm.ChatTime}}) {
		// One of our messages whose ACK was lost with a connection, replayed from our own
		// inbox: that is its ACK. The app has it from Send.
		r.seen.add(cm.MsgID)
		r.advance(cm.Seq)
		return nil
	}
	if r.overflowed {
		return nil // left out: the reconnect after the overflow replays it
	}
	if cm.MsgID != 0 && r.seen.has(cm.MsgID) {
		c.stats.duplicates.Add(1)
		r.advance(cm.Seq)
		return nil
	}
	next := max(r.cursor, cm.Seq)
	select {
	case c.queue <- item{kind: itemMessage, msg: fromChatMsg(cm, env.Extend), cursor: next, hasCursor: r.hasCursor, epoch: r.epoch}:
	default:
		c.stats.overflows.Add(1)
		c.log.Warn("OnMessage is a whole queue behind: leaving messages out until it catches up, then reconnecting", "queue", cap(c.queue))
		r.overflowed = true
		c.overflowed.Store(r.wc)
		if len(c.queue) <= cap(c.queue)/2 && c.overflowed.CompareAndSwap(r.wc, nil) {
			return errOverflow // drained meanwhile
		}
		return nil
	}
	if cm.MsgID != 0 {
		r.seen.add(cm.MsgID)
	}
	r.cursor = next
	return nil
}

// advance moves the cursor past a message the app will not see (a duplicate, our own)
// and lets the handler goroutine store it, in order. With the queue full the item is
// skipped: the next message carries the cursor anyway.
func (r *runner) advance(seq int64) {
	if (seq <= r.cursor && r.hasCursor) || r.overflowed {
		return // after an overflow the cursor stays before what was left out
	}
	r.cursor = max(r.cursor, seq)
	select {
	case r.c.queue <- item{kind: itemCursor, cursor: r.cursor, hasCursor: true, epoch: r.epoch}:
	default:
	}
}

// keepalive writes KEEPALIVE every interval until stop: the node answers it, which also
// proves the connection alive to the reader's deadline.
func (r *runner) keepalive(wc *wsConn, stop <-chan struct{}) {
	t := time.NewTicker(r.c.cfg.KeepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := wc.write(ws.OpText, r.c.keepalive); err != nil {
				wc.abort()
				return
			}
		}
	}
}

// failTooLarge fails the Send that made the node close wc with 1009: the largest message
// written on wc and not acknowledged (every message before it was within the limit).
// The others are resent on the next connection.
func (c *Client) failTooLarge(wc *wsConn) {
	c.mu.Lock()
	var big *pending
	for _, p := range c.pending {
		if p.conn == wc && (big == nil || len(p.frame) > len(big.frame)) {
			big = p
		}
	}
	c.mu.Unlock()
	if big != nil {
		c.resolve(big.id, result{err: fmt.Errorf("%w: the node closed the connection with 1009 (%d bytes)", ErrTooLarge, len(big.frame))})
	}
}
