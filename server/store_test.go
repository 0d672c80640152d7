package server_test

import (
	"context"
	"errors"
	"sync"

	"imgate/message"
)

// memInbox is the store double of the server's tests: per-user inboxes with gap-free
// seqs, and resends detected by (senderId, clientMsgId) as the real stores detect them.
// It serves the node as its Inbox; memOutbox writes into it.
type memInbox struct {
	mu       sync.Mutex
	inboxes  map[string][]message.Entry  // by user; an entry's seq is its index + 1
	byClient map[[2]string]message.Saved // the first message of (senderId, clientMsgId)
}

func newMemInbox() *memInbox {
	return &memInbox{inboxes: map[string][]message.Entry{}, byClient: map[[2]string]message.Saved{}}
}

// save persists recs in order. A resend gets the first message's Saved with
// Duplicate set and the resend's SenderConn and Node, so that the resend is acknowledged.
func (m *memInbox) save(recs []message.Record) []message.Saved {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]message.Saved, 0, len(recs))
	for _, r := range recs {
		key := [2]string{r.Msg.SenderID, r.Msg.ClientMsgID}
		if first, ok := m.byClient[key]; ok && r.Msg.ClientMsgID != "" {
			first.SenderConn, first.Node, first.Duplicate = r.SenderConn, r.Node, true
			out = append(out, first)
			continue
		}
		sv := message.Saved{Record: r, ReceiverSeq: m.appendLocked(r.Msg.ReceiverID, r)}
		sv.SenderSeq = sv.ReceiverSeq
		if r.Msg.SenderID != r.Msg.ReceiverID {
			sv.SenderSeq = m.appendLocked(r.Msg.SenderID, r)
		}
		if r.Msg.ClientMsgID != "" {
			m.byClient[key] = sv
		}
		out = append(out, sv)
	}
	return out
}

// appendLocked appends r to user's inbox and returns its seq there.
func (m *memInbox) appendLocked(user string, r message.Record) int64 {
	seq := int64(len(m.inboxes[user]) + 1)
	e := message.Entry{Seq: seq, Msg: r.Msg, SenderConn: r.SenderConn}
	e.Msg.Seq = seq
	m.inboxes[user] = append(m.inboxes[user], e)
	return seq
}

func (m *memInbox) Replay(_ context.Context, userID string, afterSeq int64, limit int) ([]message.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.inboxes[userID]
	if afterSeq >= int64(len(in)) {
		return nil, nil
	}
	page := in[max(afterSeq, 0):]
	return append([]message.Entry(nil), page[:min(limit, len(page))]...), nil
}

func (m *memInbox) LastSeqs(_ context.Context, users []string) ([]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int64, len(users))
	for i, u := range users {
		out[i] = int64(len(m.inboxes[u]))
	}
	return out, nil
}

// errOutboxFull is memOutbox's answer when its queue is full.
var errOutboxFull = errors.New("test outbox: full")

// memOutbox is the outbox double: like the standalone batcher, it persists what the node
// submits on its own goroutine, in batches of whatever is queued, and reports each batch
// to its sink. Stop it with stop after the node has shut down.
type memOutbox struct {
	inbox *memInbox
	queue chan message.Record
	done  chan struct{}
}

func newMemOutbox(in *memInbox) *memOutbox {
	return &memOutbox{inbox: in, queue: make(chan message.Record, 8192), done: make(chan struct{})}
}

func (o *memOutbox) Submit(r message.Record) error {
	select {
	case o.queue <- r:
		return nil
	default:
		return errOutboxFull
	}
}

// start begins persisting and reporting to sink.
func (o *memOutbox) start(sink message.Sink) {
	go func() {
		defer close(o.done)
		for r := range o.queue {
			batch := []message.Record{r}
			for more := true; more && len(batch) < 256; {
				select {
				case r, ok := <-o.queue:
					if ok {
						batch = append(batch, r)
					}
					more = ok
				default:
					more = false
				}
			}
			sink.Saved(o.inbox.save(batch))
		}
	}()
}

// stop persists what is queued and waits for the goroutine to end.
func (o *memOutbox) stop() {
	close(o.queue)
	<-o.done
}
