package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"imgate/server"
)

// wsFlags are the WebSocket node settings that standalone and node share (the listen
// address is each role's own).
type wsFlags struct {
	node       server.Config
	pprof      string
	authSecret string
}

func (f *wsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.node.Path, "ws-path", "/ws", "WebSocket path")
	fs.IntVar(&f.node.MaxMessageBytes, "max-message-bytes", 64<<10, "largest client message in bytes; larger is closed with 1009")
	fs.DurationVar(&f.node.InitTimeout, "init-timeout", 10*time.Second, "time allowed from connect to CONNECT_INIT (close 4408)")
	fs.DurationVar(&f.node.IdleTimeout, "idle-timeout", 60*time.Second, "close a connection silent for this long (close 4408)")
	fs.IntVar(&f.node.WorkerID, "node-id", 0, "snowflake worker id 0..1023 (distinct per node of one deployment)")
	fs.IntVar(&f.node.MaxOutboundBytes, "max-outbound-bytes", 1<<20, "bytes queued for one connection before it is closed with 4503")
	fs.IntVar(&f.node.EventLoops, "event-loops", 0, "gnet event loops (0 = one per CPU)")
	fs.StringVar(&f.node.AdvertiseIP, "advertise-ip", "", "IP clients are told to dial (default: the ws-addr host)")
	fs.StringVar(&f.pprof, "pprof-addr", "", "serve net/http/pprof on this address (empty: off)")
	fs.Float64Var(&f.node.RateLimit, "rate-limit", 200, "content and SIGNED messages per second per connection (ERROR rate_limited over it, 4429 when it persists); 0 = off")
	fs.IntVar(&f.node.RateBurst, "rate-burst", 400, "messages a connection may send at once above --rate-limit")
	fs.StringVar(&f.authSecret, "auth-secret", "", "HS256 secret of CONNECT_INIT tokens (at least 16 bytes; empty: auth off). Prefer IMGATE_AUTH_SECRET")
}

// applyNodeSecurity checks the rate-limit flags and turns --auth-secret into the node's
// config. --rate-limit 0 is off, as RateLimit 0 is in the config.
func applyNodeSecurity(cfg *server.Config, secret string) error {
	if cfg.RateLimit < 0 {
		return errors.New("--rate-limit must not be negative (0 turns it off)")
	}
	if cfg.RateBurst <= 0 {
		return errors.New("--rate-burst must be positive")
	}
	if secret == "" {
		return nil
	}
	auth, err := server.NewHMACAuth(secret)
	if err != nil {
		return fmt.Errorf("--auth-secret: %w", err)
	}
	cfg.Auth = auth
	return nil
}

// runToken is `imgate token`: it prints a CONNECT_INIT token for a user, signed with the
// secret the nodes verify (--auth-secret).
func runToken(_ context.Context, args []string, stdout, stderr io.Writer) int {
	var secret, user string
	var ttl time.Duration
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.StringVar(&secret, "auth-secret", "", "the nodes' --auth-secret (or IMGATE_AUTH_SECRET)")
	fs.StringVar(&user, "user", "", "the user id the token proves (senderId of CONNECT_INIT)")
	fs.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageError(stderr, "token", err)
	}
	if user == "" || ttl <= 0 {
		return usageError(stderr, "token", errors.New("--user is required and --ttl must be positive"))
	}
	auth, err := server.NewHMACAuth(secret)
	if err != nil {
		return usageError(stderr, "token", err)
	}
	fmt.Fprintln(stdout, auth.Token(user, ttl))
	return 0
}
