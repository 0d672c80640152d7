package client

import "context"

// itemKind is what a queued item carries.
type itemKind uint8

const (
	itemCursor  itemKind = iota // only a cursor to store
	itemMessage                 // a content message for OnMessage
	itemReceipt                 // a receipt for OnReceipt
)

// item is one entry of the queue between the reader and the handler goroutine. cursor is
// the cursor once this item is handled: the handler goroutine stores it after OnMessage
// returns, so a stored cursor never passes a message the app has not handled.
type item struct {
	kind      itemKind
	msg       Message
	receipt   Receipt
	cursor    int64
	hasCursor bool   // false for a new device before its first ACK: nothing to store
	epoch     uint64 // Client.epoch when queued: an item from before a cursorAhead reset stores nothing
}

// handle is the handler goroutine: it calls OnMessage, OnReceipt and OnState one at a time
// and stores the cursor, until ctx ends.
func (c *Client) handle(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.changed:
			if c.cfg.OnState != nil {
				c.cfg.OnState(c.State())
			}
		case it := <-c.queue:
			switch it.kind {
			case itemMessage:
				if c.cfg.OnMessage != nil {
					c.cfg.OnMessage(it.msg)
				}
			case itemReceipt:
				if c.cfg.OnReceipt != nil {
					c.cfg.OnReceipt(it.receipt)
				}
			}
			if it.hasCursor {
				c.storeCursor(it.cursor, it.epoch, false)
			}
			if wc := c.overflowed.Load(); wc != nil && len(c.queue) <= cap(c.queue)/2 && c.overflowed.CompareAndSwap(wc, nil) {
				// Caught up: the reader reconnects from the cursor to get what it left out.
				c.log.Info("handlers caught up after an overflow: reconnecting from the cursor")
				_ = wc.closeWith(1000, "")
				wc.abort()
			}
		}
	}
}

// storeCursor stores seq when it is ahead of the stored cursor (or, with reset, whatever
// it is) and epoch is current. It runs on the handler goroutine, and on the reader for a
// cursorAhead reset; cursorMu keeps Save calls one at a time and in order.
func (c *Client) storeCursor(seq int64, epoch uint64, reset bool) {
	c.cursorMu.Lock()
	defer c.cursorMu.Unlock()
	if reset {
		c.epoch++
	} else if epoch != c.epoch || (c.hasSaved && seq <= c.saved) {
		return
	}
	if err := c.cfg.Cursor.Save(seq); err != nil {
		if !c.failing {
			c.log.Warn("cursor not stored (retried with the next message)", "err", err)
		}
		c.failing = true
		return
	}
	c.saved, c.hasSaved, c.failing = seq, true, false
}
