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
	hasCursor bool // false for a new device before its first ACK: nothing to store
	reset     bool // cursorAhead: store cursor even though it is lower
}

// handle is the handler goroutine: it calls OnMessage, OnReceipt and OnState one at a time
// and stores the cursor, until ctx ends. saved is the stored cursor (has: one exists).
func (c *Client) handle(ctx context.Context, saved int64, has bool) {
	failing := false
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
			if it.hasCursor && (it.reset || !has || it.cursor > saved) {
				if err := c.cfg.Cursor.Save(it.cursor); err != nil {
					if !failing {
						c.log.Warn("cursor not stored (retried with the next message)", "err", err)
					}
					failing = true
				} else {
					saved, has, failing = it.cursor, true, false
				}
			}
			select {
			case c.drained <- struct{}{}:
			default:
			}
		}
	}
}
