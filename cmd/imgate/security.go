package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"imgate/dispatch"
	"imgate/server"
)

// wsFlags are the WebSocket node settings that standalone and node share (the listen
// address is each role's own).
type wsFlags struct {
	node           server.Config
	pprof          string
	auth           authFlags
	allowedOrigins string
	advertiseURL   string        // the URL clients dial (a TLS proxy's), empty: ws://IP:port/path
	drainWindow    time.Duration // how long a drain (SIGTERM, admin) spreads the 1001 closes over
}

func (f *wsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.node.Path, "ws-path", "/ws", "WebSocket path")
	fs.IntVar(&f.node.MaxMessageBytes, "max-message-bytes", 64<<10, "largest client message in bytes; larger is closed with 1009")
	fs.DurationVar(&f.node.InitTimeout, "init-timeout", 10*time.Second, "time allowed from connect to CONNECT_INIT (close 4408)")
	fs.DurationVar(&f.node.IdleTimeout, "idle-timeout", 60*time.Second, "close a connection silent for this long (close 4408)")
	fs.IntVar(&f.node.WorkerID, "node-id", 0, "snowflake worker id 0..1023 (distinct per node of one deployment)")
	fs.IntVar(&f.node.MaxOutboundBytes, "max-outbound-bytes", 1<<20, "bytes queued for one connection before it is closed with 4503")
	fs.IntVar(&f.node.EventLoops, "event-loops", 0, "gnet event loops (0 = one per CPU)")
	fs.IntVar(&f.node.ReplayWorkers, "replay-workers", 0, "replay workers: each takes the queued CONNECT_INITs together (one presence sync, one newest-seq read) and runs their replays (0 = the default, 4)")
	fs.StringVar(&f.node.AdvertiseIP, "advertise-ip", "", "IP clients are told to dial (default: the ws-addr host)")
	fs.StringVar(&f.advertiseURL, "advertise-url", "", "WebSocket URL clients are told to dial, e.g. wss://im.example.com/n1/ws behind a TLS proxy (default: ws://<advertise-ip>:<port><ws-path>)")
	fs.DurationVar(&f.drainWindow, "drain-window", 10*time.Second, "on SIGTERM or an admin drain, close the clients with 1001 spread over this long (reconnect storms); 0 = all at once")
	fs.StringVar(&f.pprof, "pprof-addr", "", "serve net/http/pprof on this address (empty: off)")
	fs.Float64Var(&f.node.RateLimit, "rate-limit", 200, "content and SIGNED messages per second per connection (ERROR rate_limited over it, 4429 when it persists); 0 = off")
	fs.IntVar(&f.node.RateBurst, "rate-burst", 400, "messages a connection may send at once above --rate-limit")
	f.auth.register(fs, "HS256 secret of CONNECT_INIT tokens (at least 16 bytes; empty: auth off)")
	fs.IntVar(&f.node.MaxPendingPerIP, "max-pending-per-ip", server.DefaultMaxPendingPerIP,
		"connections one source IP may hold before CONNECT_INIT; more are refused with 503 (negative = no cap)")
	fs.StringVar(&f.allowedOrigins, "allowed-origins", "", "comma list of browser origins (scheme://host[:port]) whose pages may open a WebSocket; * = any. "+
		"Requests without Origin always pass; others get 403 (standalone adds its own --http-addr page)")
}

// splitList splits a comma list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// secretFlag is a secret taken from the environment (IMGATE_NAME), the --config file or
// the file --NAME-file, never from the command line (PROTOCOL §7): argv shows in ps and
// in pprof's /debug/pprof/cmdline. parseFlags refuses --NAME given as an argument.
type secretFlag struct {
	name, value, file string
}

// secretValue is the flag.Value of a secret, so that parseFlags can tell it from others.
type secretValue string

func (v *secretValue) String() string {
	if v == nil {
		return ""
	}
	return string(*v)
}

func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }

func (s *secretFlag) register(fs *flag.FlagSet, name, usage string) {
	s.name = name
	fs.Var((*secretValue)(&s.value), name, usage+". Only from "+envName(name)+" or --config (never on the command line: ps and pprof's cmdline show argv); or use --"+name+"-file")
	fs.StringVar(&s.file, name+"-file", "", "file holding --"+name+" (one trailing newline is trimmed)")
}

// envName is the environment variable of the flag name: IMGATE_ and the name in capitals
// with '_' for '-'.
func envName(name string) string {
	return "IMGATE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// get returns the secret: the value, or the file's content without one trailing
// newline. Both given is an error.
func (s *secretFlag) get() (string, error) {
	if s.file == "" {
		return s.value, nil
	}
	if s.value != "" {
		return "", fmt.Errorf("--%s and --%s-file are both set: give one", s.name, s.name)
	}
	b, err := os.ReadFile(s.file)
	if err != nil {
		return "", fmt.Errorf("--%s-file: %w", s.name, err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", fmt.Errorf("--%s-file %s is empty", s.name, s.file)
	}
	return v, nil
}

// authFlags are the token settings: the HS256 secret and the longest token lifetime.
type authFlags struct {
	secret      secretFlag
	maxLifetime time.Duration
}

func (a *authFlags) register(fs *flag.FlagSet, usage string) {
	a.secret.register(fs, "auth-secret", usage)
	fs.DurationVar(&a.maxLifetime, "max-token-lifetime", server.DefaultMaxTokenLifetime,
		"refuse tokens whose exp is further than this from now (or from their iat)")
}

// verifier returns the HMACAuth of the flags, nil when no secret is set (auth off).
func (a *authFlags) verifier() (*server.HMACAuth, error) {
	secret, err := a.secret.get()
	if err != nil || secret == "" {
		return nil, err
	}
	if a.maxLifetime <= 0 {
		return nil, errors.New("--max-token-lifetime must be positive")
	}
	auth, err := server.NewHMACAuth(secret, server.WithMaxTokenLifetime(a.maxLifetime))
	if err != nil {
		return nil, fmt.Errorf("--auth-secret: %w", err)
	}
	return auth, nil
}

// applyNodeSecurity checks the rate-limit flags and turns --auth-secret and
// --allowed-origins into the node's config. --rate-limit 0 is off, as RateLimit 0 is in the config.
func applyNodeSecurity(cfg *server.Config, af *authFlags, origins string) error {
	cfg.AllowedOrigins = append(cfg.AllowedOrigins, splitList(origins)...)
	if cfg.RateLimit < 0 {
		return errors.New("--rate-limit must not be negative (0 turns it off)")
	}
	if cfg.RateBurst <= 0 {
		return errors.New("--rate-burst must be positive")
	}
	auth, err := af.verifier()
	if err != nil {
		return err
	}
	if auth != nil {
		cfg.Auth = auth
	}
	return nil
}

// httpAccessFlags are the access settings of the dispatcher routes, shared by
// standalone (its HTTP address) and dispatch.
type httpAccessFlags struct {
	apiKey          secretFlag
	allowedHosts    string
	devLogin        bool
	maxGroupMembers int
}

func (f *httpAccessFlags) register(fs *flag.FlagSet) {
	f.apiKey.register(fs, "api-key", "server API key: Bearer credential of the server API (groups, send, broadcast; closed without a key) that also reads any user's history and presence (empty: none)")
	fs.IntVar(&f.maxGroupMembers, "max-group-members", dispatch.DefaultMaxGroupMembers, "most members a group may have (server API; more is 400)")
	fs.StringVar(&f.allowedHosts, "allowed-hosts", "", "comma list of extra names the HTTP Host header may carry (besides the --http-addr host, localhost, 127.0.0.1, ::1); "+
		"others get 421 (DNS rebinding). With --http-addr 0.0.0.0 or [::] and no list, any Host is accepted")
	fs.BoolVar(&f.devLogin, "dev-login", false, "DEVELOPMENT ONLY: serve POST /api/v1/dev/login, which signs a token for any user id it is asked for "+
		"(the web page's sign-in without a backend). Needs --auth-secret and a loopback --http-addr; logs a WARN")
}

// apply sets the access fields of dc: the API key, the allowed hosts, and auth, the
// verifier of user tokens (the nodes' --auth-secret; nil: none), which also signs the
// tokens of --dev-login. With neither auth nor an API key the history and presence
// routes stay open, and dispatch.New warns.
func (f *httpAccessFlags) apply(dc *dispatch.Config, auth *server.HMACAuth) error {
	key, err := f.apiKey.get()
	if err != nil {
		return err
	}
	if f.maxGroupMembers <= 0 {
		return errors.New("--max-group-members must be positive")
	}
	dc.APIKey, dc.MaxGroupMembers = key, f.maxGroupMembers
	if auth != nil {
		dc.Auth = auth
	}
	dc.AllowedHosts = append(dc.AllowedHosts, splitList(f.allowedHosts)...)
	if !f.devLogin {
		return nil
	}
	// Dev login signs any user's token for whoever asks: refused unless it can only
	// help a developer on this machine (docs/security.md).
	if auth == nil {
		return errors.New("--dev-login needs --auth-secret (IMGATE_AUTH_SECRET): its tokens are signed with it; without a secret the page needs no token")
	}
	if host, _, err := net.SplitHostPort(dc.Addr); err == nil && host != "localhost" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("--dev-login needs a loopback --http-addr (127.0.0.1, [::1], localhost), not %q: it gives anyone who reaches it a token for any user", dc.Addr)
		}
	}
	dc.DevLogin, dc.DevLoginTTL = auth, min(dispatch.DefaultDevLoginTTL, auth.MaxLifetime())
	return nil
}

// runToken is `imgate token`: it prints a CONNECT_INIT token for a user, signed with the
// secret the nodes verify (--auth-secret).
func runToken(_ context.Context, args []string, stdout, stderr io.Writer) int {
	var af authFlags
	var user string
	var ttl time.Duration
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	af.register(fs, "the nodes' --auth-secret")
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
	if ttl > af.maxLifetime {
		return usageError(stderr, "token", fmt.Errorf("--ttl %v exceeds --max-token-lifetime %v: the nodes would refuse the token", ttl, af.maxLifetime))
	}
	auth, err := af.verifier()
	if err == nil && auth == nil {
		err = errors.New("--auth-secret (or IMGATE_AUTH_SECRET, or --auth-secret-file) is required")
	}
	if err != nil {
		return usageError(stderr, "token", err)
	}
	fmt.Fprintln(stdout, auth.Token(user, ttl))
	return 0
}

// pageOrigins are the origins of the dispatcher's own page served on httpAddr: its
// host, localhost, 127.0.0.1, [::1] and the allowed hosts, each with httpAddr's port,
// over http (gnet and the dispatcher have no TLS; a TLS proxy's public origin goes in
// --allowed-origins).
func pageOrigins(httpAddr string, allowedHosts []string) []string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return nil
	}
	hosts := append([]string{"localhost", "127.0.0.1", "::1"}, allowedHosts...)
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		hosts = append(hosts, host)
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, "http://"+net.JoinHostPort(strings.Trim(h, "[]"), port))
	}
	return out
}

// warnAuthOff says loudly, once at startup, what running without --auth-secret means
// (docs/security.md): auth off is the development default, an explicit choice only in
// the sense that the operator did not set a secret.
func warnAuthOff(log *slog.Logger, cfg server.Config, wsURL string) {
	if cfg.Auth != nil {
		return
	}
	log.Warn("AUTH IS OFF: anyone who can reach "+wsURL+" can connect as any user and read every inbox; "+
		"browser pages are held back only by the Origin check (--allowed-origins). "+
		"Set IMGATE_AUTH_SECRET for anything but local development (docs/security.md)",
		"allowed_origins", cfg.AllowedOrigins)
}
