package dispatch

import (
	"context"
	"errors"
	"sync"

	"imgate/message"
)

// Outbox persists the messages of POST /api/v1/messages and reports them through the
// [Results] it was started with: the standalone batcher, or the cluster's bus to the
// save queue. Submit must not block.
type Outbox interface {
	Submit(r message.Record) error
}

// Relay carries the live-only message of POST /api/v1/broadcast to every node (the
// cluster's fanout exchange; standalone, the node itself). It must not block.
type Relay interface {
	Relay(r message.Record) error
}

// IDs hands out msgIds: a snowflake whose worker id no node of the deployment uses.
type IDs interface {
	Next() int64
}

// errNoResult is the error of a send whose Outbox took the record and was closed, or
// whose wait ended, before it reported.
var errNoResult = errors.New("dispatch: no result for the message")

// Results is the [message.Sink] the server API's Outbox reports to: it hands each
// persisted record whose Record.Node is its node to the request waiting for it, and
// passes every batch on to next (the standalone node, which delivers it; nil in a
// cluster, where the nodes get the batch from the broker). It is safe for concurrent use.
type Results struct {
	node string
	next message.Sink

	mu    sync.Mutex
	byID  map[int64]chan result       // guarded by mu: waiting sends by msgId
	byKey map[clientKey][]chan result // guarded by mu: by (senderId, clientMsgId), for resends
}

type result struct {
	saved message.Saved
	err   error
}

type clientKey struct{ sender, clientMsgID string }

// NewResults returns the Results of the server API's records, which carry node as
// their Record.Node; next (may be nil) receives every batch after it.
func NewResults(node string, next message.Sink) *Results {
	return &Results{node: node, next: next, byID: make(map[int64]chan result), byKey: make(map[clientKey][]chan result)}
}

// Node is the Record.Node of the server API's records.
func (r *Results) Node() string { return r.node }

// Saved implements message.Sink.
func (r *Results) Saved(batch []message.Saved) {
	for i := range batch {
		if batch[i].Node == r.node {
			r.settle(batch[i].Record, result{saved: batch[i]})
		}
	}
	if r.next != nil {
		r.next.Saved(batch)
	}
}

// Failed implements message.Sink.
func (r *Results) Failed(recs []message.Record, err error) {
	for i := range recs {
		if recs[i].Node == r.node {
			r.settle(recs[i], result{err: err})
		}
	}
	if r.next != nil {
		r.next.Failed(recs, err)
	}
}

// settle hands res to the send waiting for rec: by msgId, or for a resend (the store
// answers it with the first message's msgId) by (senderId, clientMsgId).
func (r *Results) settle(rec message.Record, res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.byID[rec.Msg.MsgID]; ok {
		delete(r.byID, rec.Msg.MsgID)
		r.dropKeyLocked(rec.Msg.SenderID, rec.Msg.ClientMsgID, ch)
		ch <- res
		return
	}
	if rec.Msg.ClientMsgID == "" {
		return
	}
	k := clientKey{rec.Msg.SenderID, rec.Msg.ClientMsgID}
	if chs := r.byKey[k]; len(chs) > 0 {
		ch := chs[0]
		r.dropKeyLocked(k.sender, k.clientMsgID, ch)
		for id, c := range r.byID {
			if c == ch {
				delete(r.byID, id)
			}
		}
		ch <- res
	}
}

func (r *Results) dropKeyLocked(sender, clientMsgID string, ch chan result) {
	if clientMsgID == "" {
		return
	}
	k := clientKey{sender, clientMsgID}
	chs := r.byKey[k]
	for i, c := range chs {
		if c == ch {
			chs = append(chs[:i:i], chs[i+1:]...)
			break
		}
	}
	if len(chs) == 0 {
		delete(r.byKey, k)
	} else {
		r.byKey[k] = chs
	}
}

// send submits rec to out and waits until it is persisted (or refused, or failed), or
// ctx ends.
func (r *Results) send(ctx context.Context, out Outbox, rec message.Record) (message.Saved, error) {
	ch := make(chan result, 1)
	r.mu.Lock()
	r.byID[rec.Msg.MsgID] = ch
	if k := rec.Msg.ClientMsgID; k != "" {
		key := clientKey{rec.Msg.SenderID, k}
		r.byKey[key] = append(r.byKey[key], ch)
	}
	r.mu.Unlock()
	forget := func() {
		r.mu.Lock()
		if r.byID[rec.Msg.MsgID] == ch {
			delete(r.byID, rec.Msg.MsgID)
		}
		r.dropKeyLocked(rec.Msg.SenderID, rec.Msg.ClientMsgID, ch)
		r.mu.Unlock()
	}
	if err := out.Submit(rec); err != nil {
		forget()
		return message.Saved{}, err
	}
	select {
	case res := <-ch:
		return res.saved, res.err
	case <-ctx.Done():
		forget()
		return message.Saved{}, errors.Join(errNoResult, ctx.Err())
	}
}
