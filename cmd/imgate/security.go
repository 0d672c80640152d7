package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"imgate/dispatch"
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

// httpAccessFlags are the access settings of the dispatcher routes, shared by
// standalone (its HTTP address) and dispatch.
type httpAccessFlags struct {
	apiKey       string
	allowedHosts string
}

func (f *httpAccessFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.apiKey, "api-key", "", "server API key: Bearer credential that reads any user's history and presence (empty: none). Prefer IMGATE_API_KEY")
	fs.StringVar(&f.allowedHosts, "allowed-hosts", "", "comma list of extra names the HTTP Host header may carry (besides the --http-addr host, localhost, 127.0.0.1, ::1); "+
		"others get 421 (DNS rebinding). With --http-addr 0.0.0.0 or [::] and no list, any Host is accepted")
}

// apply sets the access fields of dc: the API key, the allowed hosts, and auth, the
// verifier of user tokens (the nodes' --auth-secret; nil: none). With neither auth nor
// an API key the history and presence routes stay open, and dispatch.New warns.
func (f *httpAccessFlags) apply(dc *dispatch.Config, auth dispatch.TokenVerifier) {
	dc.Auth, dc.APIKey = auth, f.apiKey
	for _, h := range strings.Split(f.allowedHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			dc.AllowedHosts = append(dc.AllowedHosts, h)
		}
	}
}

// tokenVerifier returns the verifier of user tokens signed with secret, nil when
// secret is empty (auth off).
func tokenVerifier(secret string) (dispatch.TokenVerifier, error) {
	if secret == "" {
		return nil, nil
	}
	auth, err := server.NewHMACAuth(secret)
	if err != nil {
		return nil, fmt.Errorf("--auth-secret: %w", err)
	}
	return auth, nil
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
