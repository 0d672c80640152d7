package client

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config configures a Client. Every zero field has the documented default (withDefaults).
type Config struct {
	// UserID is the user this device belongs to (CONNECT_INIT senderId). Required.
	UserID string
	// Token returns the token sent in CONNECT_INIT; it is called before every connection
	// attempt, so it can refresh an expiring one. Nil: no token (a node without auth).
	// A node that refuses it closes with 4401 and Run returns ErrUnauthorized.
	Token func(ctx context.Context) (string, error)

	// Dispatcher is the base URL of a dispatcher (http://host:port): before each connection
	// the Client asks GET Dispatcher/api/v1/nodes/pick?userId=U for a node. URL is a fixed
	// WebSocket URL (ws://host:port/ws or wss://…) dialled instead. Exactly one is required.
	Dispatcher string
	URL        string

	// Cursor keeps the highest inbox seq the app has handled (PROTOCOL §5). Nil: a
	// MemoryCursor, so the cursor lives as long as the Client; give a FileCursor (or your
	// own store) to resume after the process restarts.
	Cursor CursorStore
	// ReplayAll: a device whose Cursor holds nothing yet asks for the whole inbox (cursor 0).
	// False (the default): it asks for no replay, as a brand-new device that does not want
	// history, and starts from the inbox's newest seq at its first connection.
	ReplayAll bool

	// OnMessage is called for every content message delivered to this device (from peers,
	// group members and this user's other devices), once per msgId, in the order received.
	// OnReceipt is called for every SIGNED receipt. OnState is called when the connection
	// state changes (coalesced: a slow handler sees the latest state), with the error that
	// ended the previous connection, if any. All three run on one goroutine of the Client,
	// never concurrently; they may call Send and Sign. Nil: ignored.
	OnMessage func(Message)
	OnReceipt func(Receipt)
	OnState   func(State, error)

	// Logger receives the Client's logs (connects, closes, reconnect delays, cursor store
	// failures). Nil: discarded.
	Logger *slog.Logger
	// HTTPClient asks the dispatcher. Nil: a client with a 10 s timeout.
	HTTPClient *http.Client
	// TLSConfig is used to dial wss:// URLs. Nil: Go's defaults.
	TLSConfig *tls.Config

	// MinBackoff and MaxBackoff bound the reconnect delay: capped exponential backoff with
	// full jitter, a random delay in [0, min(MaxBackoff, MinBackoff·2^attempt)). The attempt
	// count restarts when a connection stayed up for MaxBackoff. Defaults 250 ms and 30 s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// ConnectTimeout bounds dial, upgrade and each write; and, reset on every frame
	// received, the wait for the ACK of CONNECT_INIT (a long replay keeps it alive).
	// Default 10 s.
	ConnectTimeout time.Duration
	// KeepaliveInterval is how often a bound connection sends KEEPALIVE (the node closes
	// with 4408 after 60 s without a frame, by default). A connection that receives nothing
	// for 2 × KeepaliveInterval + ConnectTimeout is considered dead and replaced.
	// Default 25 s.
	KeepaliveInterval time.Duration

	// MaxMessageBytes bounds an envelope this Client sends: Send refuses a larger one with
	// ErrTooLarge before it reaches the node. Default 65536, the node's default limit.
	MaxMessageBytes int
	// MaxInboundBytes bounds a message from the node; a larger one ends the connection.
	// Default 1 MiB.
	MaxInboundBytes int
	// MaxPending bounds the Sends waiting for their ACK; Send blocks (until its context
	// ends) while that many are outstanding. Default 256.
	MaxPending int
	// QueueLen bounds the messages and receipts received and not yet handled by OnMessage
	// and OnReceipt. When it is full the Client leaves out the connection's further
	// messages and receipts (it still reads ACKs and ERRORs, so a handler waiting in Send is
	// answered) until the handlers have worked it down to half, then reconnects from its
	// cursor: with a durable store nothing is lost, without one (at-most-once) what was left
	// out is. Default 1024.
	QueueLen int
	// DedupeLen bounds the msgIds remembered to drop duplicates (replay then live, a
	// redelivery, this Client's own acknowledged messages). Default 8192, at least
	// 2 × QueueLen.
	DedupeLen int
}

// StaticToken returns a Config.Token that always answers tok.
func StaticToken(tok string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return tok, nil }
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Cursor == nil {
		c.Cursor = &MemoryCursor{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.KeepaliveInterval <= 0 {
		c.KeepaliveInterval = 25 * time.Second
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.MaxInboundBytes <= 0 {
		c.MaxInboundBytes = 1 << 20
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 256
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 1024
	}
	if c.DedupeLen <= 0 {
		c.DedupeLen = 8192
	}
	c.DedupeLen = max(c.DedupeLen, 2*c.QueueLen)
	return c
}

// Validate reports a Config that cannot work. It does not change c.
func (c Config) Validate() error {
	if c.UserID == "" {
		return errors.New("client: UserID is required")
	}
	if (c.Dispatcher == "") == (c.URL == "") {
		return errors.New("client: exactly one of Dispatcher and URL is required")
	}
	if c.Dispatcher != "" {
		u, err := url.Parse(c.Dispatcher)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("client: Dispatcher must be an http:// or https:// URL")
		}
	}
	if c.URL != "" && !strings.HasPrefix(c.URL, "ws://") && !strings.HasPrefix(c.URL, "wss://") {
		return errors.New("client: URL must be a ws:// or wss:// URL")
	}
	return nil
}
