package main

// What an audit checks once the traffic is over: acknowledgements, deliveries, replays and
// the store.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imgate/cluster/clustertest"
)

// auditReport sums up an audit.
type auditReport struct {
	sent, acked, resends, unavailable, rateLimited, dups, reconnects int
	lateOrder                                                        []string
	lat                                                              []time.Duration
}

// missing lists, per device, the acknowledged messages it should have and has not.
func (a *audit) missingLocked() (n int, sample string) {
	for _, m := range a.msgs {
		if m.msgID == "" {
			continue
		}
		for _, d := range a.devs {
			if d.closed || (d.user != m.receiver && (d.user != m.sender || d == m.from)) {
				continue
			}
			if _, ok := d.seen[m.msgID]; !ok {
				if n < 5 {
					sample += fmt.Sprintf(" %s(%s→%s, msgId %s) not at %s/%s;", m.cid, m.sender, m.receiver, m.msgID, d.user, d.name)
				}
				n++
			}
		}
	}
	return n, sample
}

// verify waits (≤ d each) until every message is acknowledged and every acknowledged one is
// delivered to every device of its receiver and sender (except the sending device), then
// checks the audit's invariants: no protocol violation, one seq per msgId and one msgId per
// seq for each user, and after each init ACK only seqs above the cursor.
func (a *audit) verify(t *testing.T, d time.Duration) auditReport {
	t.Helper()
	clustertest.WaitState(t, d, "every message is acknowledged", func() (bool, string) {
		a.mu.Lock()
		defer a.mu.Unlock()
		var s []string
		for m := range a.pending {
			if len(s) < 5 {
				s = append(s, fmt.Sprintf("%s (sends %d, unavailable %d)", m.cid, m.sends, m.unavailableAnswers))
			}
		}
		return len(a.pending) == 0, fmt.Sprintf("%d unacknowledged, e.g. %v", len(a.pending), s)
	})
	clustertest.WaitState(t, d, "every acknowledged message reached every device", func() (bool, string) {
		a.mu.Lock()
		defer a.mu.Unlock()
		n, sample := a.missingLocked()
		return n == 0, fmt.Sprintf("%d missing:%s", n, sample)
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.failures {
		t.Errorf("protocol violation: %s", f)
	}
	r := auditReport{resends: a.resends, unavailable: a.unavailable, rateLimited: a.rateLimited}
	for _, m := range a.msgs {
		r.sent++
		if m.msgID != "" {
			r.acked++
		}
	}
	bySeq := map[string]map[int64]string{} // user → seq → msgId
	byMsg := map[string]map[string]int64{} // user → msgId → seq
	for _, dv := range a.devs {
		r.dups += dv.dups
		r.reconnects += dv.reconnects
		r.lat = append(r.lat, dv.lat...)
		for _, lo := range dv.lateOrder {
			r.lateOrder = append(r.lateOrder, dv.user+"/"+dv.name+": "+lo)
		}
		if bySeq[dv.user] == nil {
			bySeq[dv.user], byMsg[dv.user] = map[int64]string{}, map[string]int64{}
		}
		for id, seq := range dv.seen {
			if prev, ok := bySeq[dv.user][seq]; ok && prev != id {
				t.Errorf("user %s: seq %d carries two messages, %s and %s", dv.user, seq, prev, id)
			}
			if prev, ok := byMsg[dv.user][id]; ok && prev != seq {
				t.Errorf("user %s: message %s has seqs %d and %d", dv.user, id, prev, seq)
			}
			bySeq[dv.user][seq], byMsg[dv.user][id] = id, seq
		}
		// Before its init ACK a connection gets every seq after its cursor up to the ACK's
		// seq (replayed, or live while the replay ran).
		for _, rp := range dv.replays {
			if rp.ack < 0 {
				continue
			}
			if rp.ack < rp.cursor {
				t.Errorf("%s/%s: init ACK seq %d below the cursor %d", dv.user, dv.name, rp.ack, rp.cursor)
			}
			for s := rp.cursor + 1; s <= rp.ack; s++ {
				if !slices.Contains(rp.seqs, s) {
					t.Errorf("%s/%s: reconnect with cursor %d, init ACK seq %d: seq %d not replayed (got %v)", dv.user, dv.name, rp.cursor, rp.ack, s, rp.seqs)
					break
				}
			}
		}
	}
	for _, lo := range r.lateOrder {
		t.Errorf("out of seq order after the init ACK: %s", lo)
	}
	return r
}

// checkReplay connects a fresh device of user with cursor 0 and checks that the replay is
// the user's whole inbox: seqs 1..N in order, N the init ACK's seq, holding exactly the
// acknowledged messages the user sent or received.
func (a *audit) checkReplay(t *testing.T, user, url string) {
	t.Helper()
	conn, _, err := (&websocket.Dialer{HandshakeTimeout: 3 * time.Second}).Dial(url, nil)
	if err != nil {
		t.Fatalf("replay check: dial %s: %v", url, err)
	}
	defer func() { _ = conn.Close() }()
	if err := conn.WriteJSON(map[string]any{"chatMsg": map[string]any{"senderId": user, "msgType": 0}, "cursor": 0}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	var seqs []int64
	for {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var env auditEnvelope
		if err := conn.ReadJSON(&env); err != nil {
			t.Fatalf("replay check of %s: %v", user, err)
		}
		cm := env.ChatMsg
		if cm.MsgType == 11 && cm.MsgID == "" {
			if int64(len(seqs)) != cm.Seq {
				t.Errorf("replay of %s: %d messages, init ACK seq %d", user, len(seqs), cm.Seq)
			}
			break
		}
		if cm.MsgType < 1 || cm.MsgType > 4 {
			continue
		}
		if cm.Seq != int64(len(seqs))+1 {
			t.Errorf("replay of %s: message %d has seq %d", user, len(seqs)+1, cm.Seq)
		}
		if got[cm.MsgID] {
			t.Errorf("replay of %s: %s twice", user, cm.MsgID)
		}
		got[cm.MsgID] = true
		seqs = append(seqs, cm.Seq)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	want := 0
	for _, m := range a.msgs {
		if m.msgID == "" || (m.sender != user && m.receiver != user) {
			continue
		}
		want++
		if !got[m.msgID] {
			t.Errorf("replay of %s lacks acknowledged %s (%s)", user, m.msgID, m.cid)
		}
	}
	if len(got) != want {
		t.Errorf("replay of %s: %d messages, %d acknowledged ones involve the user", user, len(got), want)
	}
}

// checkStore checks the namespace's PostgreSQL tables against the audit: one row per
// acknowledged message (by msg_id and by (sender_id, client_msg_id)), inboxes gap-free
// from 1 and their heads at the last seq.
func (a *audit) checkStore(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.mu.Lock()
	acked := map[string]string{} // msgId → cid
	for _, m := range a.msgs {
		if m.msgID != "" {
			acked[m.msgID] = m.cid
		}
	}
	a.mu.Unlock()
	var rows, ids, keys int
	err := c.Svc.PG.QueryRow(ctx, `SELECT count(*), count(DISTINCT msg_id), count(DISTINCT (sender_id, client_msg_id)) FROM `+c.NS+`.messages`).Scan(&rows, &ids, &keys)
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	if rows != len(acked) || ids != rows || keys != rows {
		t.Errorf("messages: %d rows, %d distinct msg_id, %d distinct (sender_id, client_msg_id); %d acknowledged", rows, ids, keys, len(acked))
	}
	r, err := c.Svc.PG.Query(ctx, `SELECT msg_id FROM `+c.NS+`.messages`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for r.Next() {
		var id int64
		if err := r.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[strconv.FormatInt(id, 10)] = true
	}
	r.Close()
	for id, cid := range acked {
		if !stored[id] {
			t.Errorf("acknowledged %s (%s) is not stored", id, cid)
		}
	}
	r, err = c.Svc.PG.Query(ctx, `SELECT i.user_id, count(*), min(i.seq), max(i.seq), count(DISTINCT i.msg_id), coalesce(max(h.last_seq), -1)
		FROM `+c.NS+`.inbox i LEFT JOIN `+c.NS+`.inbox_heads h ON h.user_id = i.user_id GROUP BY i.user_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() {
		var user string
		var n, lo, hi, distinct, head int64
		if err := r.Scan(&user, &n, &lo, &hi, &distinct, &head); err != nil {
			t.Fatal(err)
		}
		if lo != 1 || hi != n || distinct != n || head != hi {
			t.Errorf("inbox of %s: %d rows, seq %d..%d, %d distinct messages, head %d: want gap-free 1..N, one row per message", user, n, lo, hi, distinct, head)
		}
	}
}

// percentile answers the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
