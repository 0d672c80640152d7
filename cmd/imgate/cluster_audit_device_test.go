package main

// One device of the audit: its connection, reconnects, and what it records of each frame.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// connect dials url, sends CONNECT_INIT with the cursor and waits for the init ACK.
func (d *auditDevice) connect(url string) error {
	a := d.a
	dialer := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	conn, _, err := dialer.Dial(url, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", url, err)
	}
	a.mu.Lock()
	if a.closed || d.closed {
		a.mu.Unlock()
		_ = conn.Close()
		return errors.New("closed")
	}
	d.gen++
	gen, cursor := d.gen, d.cursor
	d.conn, d.url, d.ready = conn, url, false
	d.replays = append(d.replays, auditReplay{cursor: cursor, ack: -1})
	a.mu.Unlock()
	initDone := make(chan error, 1)
	a.wg.Add(1)
	go d.readLoop(conn, gen, initDone)
	b, _ := json.Marshal(map[string]any{"chatMsg": map[string]any{"senderId": d.user, "msgType": 0}, "cursor": cursor})
	if err := d.write(conn, b); err != nil {
		_ = conn.Close()
		return err
	}
	select {
	case err := <-initDone:
		return err
	case <-time.After(10 * time.Second):
		_ = conn.Close()
		return fmt.Errorf("%s: no ACK of CONNECT_INIT within 10s", url)
	}
}

func (d *auditDevice) write(conn *websocket.Conn, b []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(3 * time.Second))
	err := conn.WriteMessage(websocket.TextMessage, b)
	if err != nil {
		_ = conn.Close() // the read loop notices and reconnects
	}
	return err
}

func (d *auditDevice) readLoop(conn *websocket.Conn, gen int, initDone chan error) {
	a := d.a
	defer a.wg.Done()
	inited := false
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			_ = conn.Close()
			a.mu.Lock()
			if d.gen == gen {
				d.conn, d.ready = nil, false
			}
			stopping := a.closed || d.closed
			a.mu.Unlock()
			if !inited {
				initDone <- fmt.Errorf("connection closed before the init ACK: %w", err)
				return
			}
			if !stopping {
				d.reconnectLoop()
			}
			return
		}
		var env auditEnvelope
		if err := json.Unmarshal(b, &env); err != nil {
			a.mu.Lock()
			a.fail("%s/%s: bad JSON from the server: %q", d.user, d.name, b)
			a.mu.Unlock()
			continue
		}
		if d.handle(&env, gen, time.Now()) && !inited {
			inited = true
			initDone <- nil
		}
	}
}

// reconnectLoop reconnects until it succeeds or the audit closes; pauses 100 ms between tries.
func (d *auditDevice) reconnectLoop() {
	a := d.a
	for {
		select {
		case <-a.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		a.mu.Lock()
		url, stopping := d.url, a.closed || d.closed
		a.mu.Unlock()
		if stopping {
			return
		}
		if a.pick != nil {
			u, err := a.pick(d.user)
			if err != nil {
				continue
			}
			url = u
		}
		if d.connect(url) == nil {
			a.mu.Lock()
			d.reconnects++
			a.mu.Unlock()
			return
		}
	}
}

// handle records one envelope; it reports whether it was the init ACK.
func (d *auditDevice) handle(env *auditEnvelope, gen int, now time.Time) bool {
	a := d.a
	cm := &env.ChatMsg
	a.mu.Lock()
	defer a.mu.Unlock()
	who := d.user + "/" + d.name
	switch cm.MsgType {
	case 11:
		if cm.MsgID == "" { // ACK of CONNECT_INIT
			if d.gen == gen {
				d.ready = true
				d.replays[len(d.replays)-1].ack = cm.Seq
			}
			for m := range a.pending {
				if m.from == d {
					m.retryNow = true
				}
			}
			return true
		}
		m := a.msgs[d.user+"\x00"+cm.ClientMsgID]
		switch {
		case m == nil:
			a.fail("%s: ACK for unknown clientMsgId %q", who, cm.ClientMsgID)
		case m.msgID == "":
			m.msgID, m.acked = cm.MsgID, now
			delete(a.pending, m)
		case m.msgID != cm.MsgID:
			a.fail("%s: clientMsgId %s acknowledged as %s and later as %s", who, m.cid, m.msgID, cm.MsgID)
		}
	case 12:
		code := ""
		if env.Error != nil {
			code = env.Error.Code
		}
		m := a.msgs[d.user+"\x00"+cm.ClientMsgID]
		if code == "unavailable" && m != nil {
			a.unavailable++
			m.unavailableAnswers++
			if m.msgID == "" {
				m.retryAt = now.Add(500 * time.Millisecond)
			}
			break
		}
		if code == "rate_limited" && m != nil { // the resends were too fast: slow down
			a.rateLimited++
			if m.msgID == "" {
				m.retryAt = now.Add(time.Second)
			}
			break
		}
		a.fail("%s: ERROR %q for %q", who, code, cm.ClientMsgID)
	case 1, 2, 3, 4:
		if cm.Seq <= 0 {
			a.fail("%s: message %s delivered without seq", who, cm.MsgID)
		}
		if _, dup := d.seen[cm.MsgID]; dup {
			d.dups++
			break
		}
		d.seen[cm.MsgID] = cm.Seq
		if d.gen == gen && !d.ready {
			r := &d.replays[len(d.replays)-1]
			r.seqs = append(r.seqs, cm.Seq)
		}
		if d.gen == gen && d.ready && cm.Seq <= d.cursor {
			d.lateOrder = append(d.lateOrder, fmt.Sprintf("seq %d after %d", cm.Seq, d.cursor))
		}
		d.cursor = max(d.cursor, cm.Seq)
		if ns, err := strconv.ParseInt(cm.TS, 10, 64); err == nil && d.ready {
			d.lat = append(d.lat, now.Sub(time.Unix(0, ns)))
		}
	case 8:
		d.receipts[cm.MsgID]++
	case 9:
	default:
		a.fail("%s: unexpected msgType %d", who, cm.MsgType)
	}
	return false
}

// send sends a new WORDS message to user to (now if connected, else once reconnected).
func (d *auditDevice) send(to string) *auditMsg {
	a := d.a
	a.mu.Lock()
	d.sent++
	m := &auditMsg{from: d, sender: d.user, receiver: to, cid: fmt.Sprintf("%s.%s.%d", d.user, d.name, d.sent), first: time.Now()}
	a.msgs[d.user+"\x00"+m.cid] = m
	a.pending[m] = struct{}{}
	conn := d.conn
	now := conn != nil && d.ready
	if now {
		m.sends++
		m.lastSent = m.first
	}
	a.mu.Unlock()
	// m.sends is the resender's once the lock is released: decide on what was read under it.
	if now {
		_ = d.write(conn, m.frame())
	}
	return m
}

func (m *auditMsg) frame() []byte {
	b, _ := json.Marshal(map[string]any{"chatMsg": map[string]any{
		"senderId": m.sender, "receiverId": m.receiver, "msg": "m " + m.cid, "msgType": 1,
		"clientMsgId": m.cid, "ts": strconv.FormatInt(m.first.UnixNano(), 10),
	}})
	return b
}

// sendJSON writes any envelope on the device's current connection.
func (d *auditDevice) sendJSON(v any) error {
	d.a.mu.Lock()
	conn := d.conn
	d.a.mu.Unlock()
	if conn == nil {
		return errors.New("not connected")
	}
	b, _ := json.Marshal(v)
	return d.write(conn, b)
}

// has reports whether d has seen msgID (and its seq).
func (d *auditDevice) has(msgID string) (int64, bool) {
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	s, ok := d.seen[msgID]
	return s, ok
}

func (d *auditDevice) receiptCount(msgID string) int {
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	return d.receipts[msgID]
}

func (d *auditDevice) connectedURL() string {
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	if d.conn == nil || !d.ready {
		return ""
	}
	return d.url
}

// ackedID answers m's msgId once acknowledged.
func (m *auditMsg) ackedID(a *audit) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return m.msgID
}
