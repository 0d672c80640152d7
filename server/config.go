package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Config configures a node. The zero value of every field means its documented default
// (New applies them); Validate checks a Config without changing it.
type Config struct {
	// Addr is the WebSocket listen address, HOST:PORT. Default "127.0.0.1:8000".
	Addr string
	// Path is the WebSocket path; other paths get HTTP 404. Default "/ws".
	Path string
	// NodeID names this node in ACK routing, logs and the dispatcher ("standalone",
	// or the ZooKeeper child name in a cluster). Default "standalone".
	NodeID string
	// WorkerID is the snowflake worker id, 0..1023. Nodes of one cluster need distinct ids.
	WorkerID int
	// AdvertiseIP and AdvertisePort are what serverNode and the dispatcher tell clients.
	// Default: the host and port of the bound address.
	AdvertiseIP   string
	AdvertisePort int
	// MaxMessageBytes bounds one client message; larger ones are refused from the frame
	// header with close 1009. Default 64 KiB.
	MaxMessageBytes int
	// InitTimeout bounds the time from TCP accept to a valid CONNECT_INIT (close 4408).
	// Default 10s.
	InitTimeout time.Duration
	// IdleTimeout closes a connection with 4408 after this long without a frame from the
	// client. Default 60s.
	IdleTimeout time.Duration
	// MaxOutboundBytes bounds the bytes queued for one connection (the loop queue plus
	// gnet's outbound buffer); a connection over it is closed with 4503. Default 1 MiB.
	MaxOutboundBytes int
	// EventLoops is the number of gnet event loops. Default GOMAXPROCS.
	EventLoops int
	// ReplayWorkers run store reads for CONNECT_INIT (replay and newest seq) off the
	// event loops; each takes the queued jobs together (up to 256: one presence sync,
	// one newest-seq read). Default 4. ReplayQueue bounds the pending CONNECT_INITs; when
	// it is full the connection is closed with 1013. Default 4096.
	ReplayWorkers int
	ReplayQueue   int
	// SlowReplays bounds the replays that wait for their connection's backlog to drain
	// (a client that reads slowly or not at all, with a large inbox). Such a replay gives
	// its worker back and goes on in this separate pool, so it never delays another
	// CONNECT_INIT; when the pool is full it is closed with 1013. Each holds at most one
	// page of encoded frames, and reads its next pages from the store itself, so up to
	// ReplayWorkers + SlowReplays store reads may run at once. Default 64.
	SlowReplays int
	// ReplayPage is the number of inbox entries read per store call. Default 256.
	ReplayPage int
	// GroupCacheMembers bounds the node's group membership cache (Deps.Groups), in
	// members over every cached group: about 60 bytes each. Default 262144 (~16 MiB);
	// negative turns the cache off (every group message is checked by the saver only).
	// GroupCacheTTL is the longest an entry is trusted without an invalidation. Default 30s.
	GroupCacheMembers int
	GroupCacheTTL     time.Duration
	// RateLimit is the sustained number of content and SIGNED messages per second one
	// connection may send; RateBurst is how many it may send at once. A message over
	// the limit gets ERROR rate_limited; a connection that keeps sending while limited
	// (its debt reaches RateBurst) is closed with 4429, and every ERROR costs a token.
	// 0 = no rate limit (as --rate-limit 0; the flag's default is 200). RateBurst 0
	// means twice RateLimit (at least 2).
	RateLimit float64
	RateBurst int
	// MaxPendingPerIP caps the connections one source IP may hold that have not sent
	// CONNECT_INIT yet (still in the handshake or awaiting init); a connection over it
	// is refused at accept with HTTP 503 and counted (Stats().Closes["pending_per_ip"]).
	// Clients that init at once hold a slot for about one round trip. Default 256:
	// `imgate bench --scenario idle --conns 2000 --rate-connect 2000` from the one
	// address 127.0.0.1 against standalone on this 2-core machine had 128 of 2000
	// refused with 64 and bound all 2000 with 128, 256 and 512 (docs/security.md);
	// 256 keeps twice that margin and still stops an address from parking thousands of
	// sockets for the init timeout. Negative: no cap.
	MaxPendingPerIP int
	// Auth verifies CONNECT_INIT tokens (close 4401 when it refuses). Nil: auth off.
	Auth Authenticator
	// AllowedOrigins are the browser origins (scheme://host[:port], host
	// case-insensitive, the scheme's default port implied) whose pages may open a
	// WebSocket; "*" allows every origin and is never implied. An upgrade without Origin
	// (not a browser) always passes; one with any other Origin gets HTTP 403 before the
	// upgrade (PROTOCOL §7). Default: none, so browsers are refused. Standalone adds the
	// origins of its own dispatcher page.
	AllowedOrigins []string
	// RepairGaps turns on gap repair (see gaps.go) for nodes whose deliveries cross a
	// broker that may lose them; it needs an Inbox. GapDelay is how long a hole in a
	// user's seqs may stay open before the range is replayed. Default 100ms.
	RepairGaps bool
	GapDelay   time.Duration
	// TickInterval is the timer sweep period of each loop. Default 1s.
	TickInterval time.Duration
	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger
}

// AdvertiseHost is the IP clients are told to dial: AdvertiseIP, or by default the host
// of Addr, 127.0.0.1 when that is empty or a wildcard (0.0.0.0, ::).
func (c Config) AdvertiseHost() string {
	if c.AdvertiseIP != "" {
		return c.AdvertiseIP
	}
	addr := c.Addr
	if addr == "" {
		addr = defaultAddr
	}
	host, _, _ := net.SplitHostPort(addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		return "127.0.0.1"
	}
	return host
}

// DefaultMaxPendingPerIP is Config.MaxPendingPerIP's default.
const DefaultMaxPendingPerIP = 256

// defaultAddr is the listen address when Config.Addr is empty.
const defaultAddr = "127.0.0.1:8000"

// withDefaults returns c with every zero field set to its default. It is the one place
// defaults are applied.
func (c Config) withDefaults() Config {
	c.AdvertiseIP = c.AdvertiseHost()
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	if c.Path == "" {
		c.Path = "/ws"
	}
	if c.NodeID == "" {
		c.NodeID = "standalone"
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxOutboundBytes == 0 {
		c.MaxOutboundBytes = 1 << 20
	}
	if c.ReplayWorkers == 0 {
		c.ReplayWorkers = 4
	}
	if c.ReplayQueue == 0 {
		c.ReplayQueue = 4096
	}
	if c.ReplayPage == 0 {
		c.ReplayPage = 256
	}
	if c.SlowReplays == 0 {
		c.SlowReplays = 64
	}
	if c.GroupCacheMembers == 0 {
		c.GroupCacheMembers = 1 << 18
	}
	if c.GroupCacheTTL <= 0 {
		c.GroupCacheTTL = 30 * time.Second
	}
	if c.MaxPendingPerIP == 0 {
		c.MaxPendingPerIP = DefaultMaxPendingPerIP
	}
	if c.RateBurst == 0 {
		c.RateBurst = 2 * int(max(c.RateLimit, 1))
	}
	if c.GapDelay <= 0 {
		c.GapDelay = 100 * time.Millisecond
	}
	if c.TickInterval <= 0 {
		c.TickInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field of c. Zero values are valid: they mean their
// defaults. It does not change c.
func (c Config) Validate() error {
	c = c.withDefaults()
	_, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("server: ws address %q: %w", c.Addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("server: ws address %q: bad port", c.Addr)
	}
	if c.Path[0] != '/' {
		return fmt.Errorf("server: path %q must start with /", c.Path)
	}
	if c.WorkerID < 0 || c.WorkerID > MaxWorkerID {
		return fmt.Errorf("server: node id (snowflake worker) %d out of range 0..%d", c.WorkerID, MaxWorkerID)
	}
	if c.MaxMessageBytes < 256 || c.MaxMessageBytes > 16<<20 {
		return fmt.Errorf("server: max message bytes %d out of range 256..16777216", c.MaxMessageBytes)
	}
	if c.InitTimeout < 0 || c.IdleTimeout < 0 {
		return errors.New("server: timeouts must be positive")
	}
	if c.MaxOutboundBytes > 1<<30 {
		return fmt.Errorf("server: max outbound bytes %d over 1 GiB", c.MaxOutboundBytes)
	}
	if c.MaxOutboundBytes < c.MaxMessageBytes {
		return fmt.Errorf("server: max outbound bytes %d below the message limit %d", c.MaxOutboundBytes, c.MaxMessageBytes)
	}
	if c.EventLoops < 0 || c.ReplayWorkers < 0 || c.ReplayQueue < 0 || c.ReplayPage < 0 || c.SlowReplays < 0 {
		return errors.New("server: counts must not be negative")
	}
	if c.RateLimit < 0 {
		return fmt.Errorf("server: rate limit %v is negative (0 turns it off)", c.RateLimit)
	}
	if c.RateBurst < 0 || c.RateBurst > 1<<20 {
		return fmt.Errorf("server: rate burst %d out of range 1..1048576", c.RateBurst)
	}
	return validateOrigins(c.AllowedOrigins)
}
