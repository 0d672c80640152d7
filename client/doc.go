/*
Package client is imgate's Go client: one device of one user, for apps and for imgate's
own tools. It speaks the wire contract of docs/protocol.md and keeps its promises for the
app: every message handed to OnMessage once, none lost while the node has a durable
store, every Send answered by the node's ACK or ERROR.

	c, err := client.New(client.Config{
		UserID:     "alice",
		Dispatcher: "http://127.0.0.1:8080",          // or URL: "ws://127.0.0.1:8000/ws"
		Token:      client.StaticToken(tok),          // or a func that refreshes it
		Cursor:     client.FileCursor{Path: "alice.cursor"},
		OnMessage:  func(m client.Message) { show(m) },
	})
	go c.Run(ctx)                                     // connects, reconnects, until ctx/Close
	ack, err := c.Send(ctx, client.Message{ReceiverID: "bob", Msg: "hi"})

# Connecting

Before each connection the Client asks the dispatcher (GET /api/v1/nodes/pick?userId=U)
for a node, or dials Config.URL. It sends CONNECT_INIT with the token (Config.Token is
called each time) and the cursor, reads the replay, and is connected (StateConnected) at
the ACK. A 503 from the dispatcher is waited out: its Retry-After (or data.retryAfterMs)
plus the Client's own jittered backoff.

# Reconnecting

A connection that ends is replaced after a delay drawn uniformly from
[0, min(MaxBackoff, MinBackoff·2^n)) (capped exponential backoff with full jitter, n the
failures in a row; n restarts after a connection that stayed up MaxBackoff). These closes
are permanent and end Run with an error instead (CloseError.Permanent, HTTPError.Permanent):
4401 (ErrUnauthorized: the token), 4400 (ErrBadInit), 1002, 1003, 1007, 1008, and an HTTP
4xx other than 408/429 from the dispatcher or the upgrade. 1009 (a message over the node's
limit) fails that message's Send with ErrTooLarge, which is not resent; the Client goes on.
Every other close (1000, 1001 drain, 1006, 1011, 1013, 4408, 4429, 4503) reconnects.

# Cursor, replay and duplicates

The cursor is the highest inbox seq handled, kept by a CursorStore (MemoryCursor,
FileCursor or the app's own). It is stored after OnMessage returns, so after a crash the
replay starts at the first message the app had not finished. A device with nothing stored
asks for no replay (ReplayAll: for the whole inbox) and starts from the inbox's newest seq.
Messages the app does not see still move the cursor: duplicates and this device's own
messages replayed from its inbox. A message whose msgId was seen among the last DedupeLen
(replay then live, a redelivery, an own acknowledged message) is dropped. When the ACK says
cursorAhead (the node's store is behind the cursor: it was reset), the Client stores 0 and
reconnects at once to replay the inbox it has never seen.

# Sending

Send waits for the node's answer: an Ack, or a *ServerError whose Code is one of
codec.Code* (match with errors.Is(err, ErrUnavailable) …; Retryable tells unavailable and
rate_limited apart). It generates a ClientMsgID when the app gives none. While the Client
is disconnected the message waits; a message written on a connection that ended before
its ACK is written again on the next one with the same ClientMsgID, which the node
acknowledges once with the first msgId and delivers once. If the replay brings that
message back first (it was stored, only the ACK was lost), the replay completes the Send.
Sign sends a receipt (SIGNED), live only: ErrNotConnected while disconnected. OnReceipt
gets the receipts of others. Groups (PROTOCOL §8): Message.GroupID instead of ReceiverID.

# Goroutines and bounds

Run's goroutine reads the connection; one more per connection writes KEEPALIVE every
KeepaliveInterval (under the node's idle timeout), and one calls the handlers (OnMessage,
OnReceipt, OnState) in order, never concurrently; handlers may call Send and Sign. Between
the reader and the handlers is a queue of QueueLen items: when the app falls that far
behind, the Client leaves the connection's further messages out (still reading ACKs and
ERRORs, so a handler waiting in Send is answered) until the handlers have worked the queue
down to half, then reconnects from its cursor (no loss with a durable store). At most MaxPending Sends are
outstanding (more wait), the duplicate filter holds DedupeLen msgIds, an inbound message is
at most MaxInboundBytes. Nothing is global: every Client owns its state. Logs go to
Config.Logger (log/slog).
*/
package client
