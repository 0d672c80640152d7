package bus

import (
	"fmt"
	"sync"
	"time"

	"imgate/cluster/rabbit"
	"imgate/codec"
	"imgate/message"
)

// errUnansweredFull is returned by NodeBus.Submit when Config.Unanswered records already
// wait for their result: the node answers ERROR unavailable and the client retries.
var errUnansweredFull = fmt.Errorf("%w: too many records waiting for the saver's answer", rabbit.ErrFull)

// errNoAnswer fails a record whose result did not come back within Config.AnswerTimeout.
var errNoAnswer = fmt.Errorf("%w: no answer from a saver in time", rabbit.ErrUnavailable)

// unanswered keeps each record a node submitted until its result comes back on the
// node's queue (persisted, duplicate or forbidden), so that a new broker connection can
// publish it again. The save queue's messages are transient (docs/architecture.md,
// "Transient messages, the store as the truth"): a broker restart drops the records it
// held, and their senders, who have no ACK yet, must not wait for ever. A record is
// published again only once its batch was confirmed: until then the publisher keeps
// and resends it itself. Records whose answer does not come within the timeout are
// handed back to fail (ERROR unavailable: the sender resends with its clientMsgId,
// which the saver deduplicates).
//
// Safe for concurrent use: Submit adds on event loops, the publisher's confirms mark,
// the node queue's consumer answers.
type unanswered struct {
	max int

	mu    sync.Mutex
	recs  map[waitKey]*waiting // guarded by mu: by keyOf
	order []*waiting           // guarded by mu: in submit order; answered entries are skipped
	head  int                  // guarded by mu: order[:head] is gone
}

// waitKey identifies what an answer answers: the sender's (senderId, clientMsgId) when the
// record has a clientMsgId — a resend of it gets a new msgId from the node, and the saver
// answers it as a duplicate with the first one's msgId —, else its msgId.
type waitKey struct {
	sender, client string
	id             int64
}

// keyOf returns the waitKey of m.
func keyOf(m *codec.ChatMsg) waitKey {
	if m.ClientMsgID != "" {
		return waitKey{sender: m.SenderID, client: m.ClientMsgID}
	}
	return waitKey{id: m.MsgID}
}

type waiting struct {
	rec       message.Record
	at        time.Time
	confirmed bool // the broker confirmed the batch that carried it
	gone      bool // answered, failed or expired: no longer in recs
}

func newUnanswered(max int) *unanswered {
	return &unanswered{max: max, recs: make(map[waitKey]*waiting)}
}

// add keeps r, accepted at at (now when zero), until it is answered; errUnansweredFull
// when max records wait already. A record with the key of one that waits replaces it (a
// resend: whichever the saver stores first answers both).
func (u *unanswered) add(r message.Record, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	k := keyOf(&r.Msg)
	u.mu.Lock()
	defer u.mu.Unlock()
	old := u.recs[k]
	if old == nil && len(u.recs) >= u.max {
		return errUnansweredFull
	}
	if old != nil {
		old.gone, old.rec = true, message.Record{}
	}
	w := &waiting{rec: r, at: at}
	u.recs[k] = w
	u.order = append(u.order, w)
	return nil
}

// answered forgets the records the answers of ks answer.
func (u *unanswered) answered(ks []waitKey) {
	if len(ks) == 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, k := range ks {
		u.removeLocked(k, 0)
	}
	u.compactLocked()
}

// forget forgets recs (failed, and reported to the sink), but not a resend of one that
// replaced it.
func (u *unanswered) forget(recs []message.Record) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := range recs {
		u.removeLocked(keyOf(&recs[i].Msg), recs[i].Msg.MsgID)
	}
	u.compactLocked()
}

// removeLocked removes the entry of k, if its msgId is id (any when id is 0).
func (u *unanswered) removeLocked(k waitKey, id int64) {
	if w := u.recs[k]; w != nil && (id == 0 || w.rec.Msg.MsgID == id) {
		w.gone, w.rec = true, message.Record{}
		delete(u.recs, k)
	}
}

// confirmed marks recs as held by the broker: a new connection publishes them again.
func (u *unanswered) confirmed(recs []message.Record) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := range recs {
		if w := u.recs[keyOf(&recs[i].Msg)]; w != nil && w.rec.Msg.MsgID == recs[i].Msg.MsgID {
			w.confirmed = true // (not a resend's entry that replaced it)
		}
	}
}

// takeConfirmed returns, in submit order, every record whose batch the broker confirmed
// and that has no answer yet, and marks them unconfirmed: they are on their way again.
func (u *unanswered) takeConfirmed() []message.Record {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []message.Record
	for _, w := range u.order[u.head:] {
		if !w.gone && w.confirmed {
			w.confirmed = false
			out = append(out, w.rec)
		}
	}
	return out
}

// expire removes and returns the records submitted before now-ttl that have no answer.
func (u *unanswered) expire(now time.Time, ttl time.Duration) []message.Record {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []message.Record
	for u.head < len(u.order) {
		w := u.order[u.head]
		if !w.gone {
			if now.Sub(w.at) < ttl {
				break
			}
			delete(u.recs, keyOf(&w.rec.Msg))
			out = append(out, w.rec)
			w.gone, w.rec = true, message.Record{}
		}
		u.order[u.head] = nil
		u.head++
	}
	u.compactLocked()
	return out
}

// len returns how many records wait for their answer.
func (u *unanswered) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.recs)
}

// compactLocked drops answered entries from the front of order and, once order holds
// more than about twice the waiting records (answers come out of submit order, and the
// front of order is consumed), keeps only the waiting ones at its start: amortised
// constant work per record, and order's backing array never grows past about twice the
// waiting records plus 1024.
func (u *unanswered) compactLocked() {
	for u.head < len(u.order) && u.order[u.head].gone {
		u.order[u.head] = nil
		u.head++
	}
	if u.head == len(u.order) {
		u.order, u.head = u.order[:0], 0
		return
	}
	if len(u.order) > 2*len(u.recs)+1024 {
		n := 0
		for _, w := range u.order[u.head:] {
			if !w.gone {
				u.order[n] = w
				n++
			}
		}
		clear(u.order[n:])
		u.order, u.head = u.order[:n], 0
	}
}
