package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"imgate/health"
	"imgate/message"

	"github.com/valyala/fasthttp"
)

// Limits and defaults of Config.
const (
	// DefaultAddr is the address Start listens on when Config.Addr is empty.
	DefaultAddr = "127.0.0.1:8080"
	// MaxHistoryLimit is the largest history page (PROTOCOL §5: limit ≤ 200).
	MaxHistoryLimit = 200
	// DefaultHistoryPage is the page size of GET /api/v1/messages without limit.
	DefaultHistoryPage = 50
)

// History reads a user's message history; saver.Store satisfies it.
type History interface {
	// History returns up to limit entries of userID's inbox exchanged with peerID
	// (every peer when peerID is empty) with seq < beforeSeq (no bound when beforeSeq
	// is 0), newest first.
	History(ctx context.Context, userID, peerID string, beforeSeq int64, limit int) ([]message.Entry, error)
}

// Presence tells where a user is connected.
type Presence interface {
	// Presence returns the number of userID's connections per node ID; empty or nil
	// when the user is offline.
	Presence(ctx context.Context, userID string) (map[string]int, error)
}

// Deps are the parts the dispatcher consumes.
type Deps struct {
	// Nodes is the view the node pick and the node list answer from. Required.
	Nodes NodeView
	// History serves GET /api/v1/messages; nil answers that route with 503.
	History History
	// Presence serves GET /api/v1/presence; nil answers that route with 404.
	Presence Presence
	// Health are the checks of GET /readyz (and, those marked Live, of GET /healthz),
	// run concurrently by a health.Checker; none means always ok.
	Health []health.Check
	// Web is the web client: its top-level files are served at GET /<name>, and
	// index.html at GET / (web.Files). Nil answers those paths with 404.
	Web fs.FS
	// Admin serves the admin sessions, kick and drain routes (see handleAdmin); nil
	// answers them with 404. The admin node list needs only Nodes.
	Admin Admin
	// Metrics serves GET /metrics (the role's Prometheus registry, built by
	// cmd/imgate); nil answers /metrics with 404.
	Metrics http.Handler
	// Groups serves the server API's group routes and GET /api/v1/messages?groupId=;
	// nil answers them with 503.
	Groups Groups
	// GroupCaches is told of every group change before the route answers; nil: no
	// node caches membership.
	GroupCaches GroupCaches
	// Outbox persists POST /api/v1/messages and reports to Results; nil answers that
	// route with 503.
	Outbox Outbox
	// Relay carries POST /api/v1/broadcast to every node; nil answers it with 503.
	Relay Relay
	// Results is what Outbox reports to (its node names the server API's records).
	// Required with Outbox or Relay.
	Results *Results
	// IDs gives the server API's msgIds. Required with Outbox or Relay.
	IDs IDs
}

// Config configures a Server. The zero value is usable: every field documents its
// zero-value default, which New applies.
type Config struct {
	// Addr is the TCP address Start listens on. Default DefaultAddr ("127.0.0.1:8080").
	Addr string
	// HistoryLimit is the largest page of GET /api/v1/messages; a larger limit in a
	// request is clamped to it. Default and maximum MaxHistoryLimit (200).
	HistoryLimit int
	// ReadTimeout bounds reading one request, headers and body. Default 10 s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. Default 10 s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle for that long. Default 60 s.
	IdleTimeout time.Duration
	// MaxRequestBodySize is the largest request body accepted; larger gets 413.
	// Default 1 MiB (a group of 5,000 members with ids of up to 128 bytes).
	MaxRequestBodySize int
	// BackendTimeout bounds each History and Presence call. Default 3 s.
	BackendTimeout time.Duration
	// CheckTimeout bounds each health check. Default health.DefaultTimeout (2 s), as
	// for the node's and the saver's /healthz and /readyz.
	CheckTimeout time.Duration
	// Auth verifies the user tokens of GET /api/v1/messages and /api/v1/presence: a
	// token whose subject is the userId of the query may read that user's history and
	// presence. Nil: no user token is accepted (only APIKey, when set).
	Auth TokenVerifier
	// APIKey is the server API key (PROTOCOL §8): as a bearer credential it may read
	// any user's history and presence. Compared in constant time. Empty: none.
	// With neither Auth nor APIKey those routes are open to anyone who reaches Addr
	// (the development default), and New logs a warning saying so.
	APIKey string
	// DevLogin, when set, serves POST /api/v1/dev/login, which signs a token for any user
	// id it is asked for: for development only, since anyone who reaches Addr may then
	// act as anyone. It needs Auth (the tokens must open the nodes) and a loopback Addr
	// (Validate refuses others), and New logs a warning. Nil: the route answers 404.
	DevLogin TokenIssuer
	// DevLoginTTL is the lifetime of the tokens DevLogin issues. Default
	// DefaultDevLoginTTL (12 h); it must fit the nodes' maximum token lifetime.
	DevLoginTTL time.Duration
	// AllowedHosts are the names, besides Addr's host, localhost, 127.0.0.1 and ::1,
	// that a request's Host header (port stripped) may carry; any other Host gets
	// 421, so a web page cannot reach the dispatcher through DNS rebinding. When Addr's
	// host is unspecified (0.0.0.0, ::, empty) and AllowedHosts is empty, every Host is
	// accepted. GET /healthz and /readyz answer whatever the Host (load balancers).
	// Default: none.
	AllowedHosts []string
	// MaxGroupMembers is the most members a group may have (PROTOCOL §8); a change
	// that passes it is answered 400. Default DefaultMaxGroupMembers (5,000).
	MaxGroupMembers int
	// Dispatchers is how many dispatchers pick for the same nodes, this one included
	// (see NewPicker): set it on each when several run side by side. Default 1, at most
	// MaxDispatchers.
	Dispatchers int
	// SendTimeout bounds the wait of POST /api/v1/messages for its message to be
	// persisted; past it the answer is 503 (retry with the same clientMsgId). Default 10 s.
	SendTimeout time.Duration
	// Logger receives errors, each logged once where it is answered; 5xx at most once
	// a second (the rest are counted in the next line), 4xx at debug level.
	// Default: discard.
	Logger *slog.Logger
}

// Validate reports the first invalid field. Zero values are valid: they mean the
// default. It does not change c.
func (c Config) Validate() error {
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("dispatch: invalid Addr %q: %w", c.Addr, err)
		}
	}
	if c.HistoryLimit < 0 || c.HistoryLimit > MaxHistoryLimit {
		return fmt.Errorf("dispatch: HistoryLimit %d out of range [0, %d]", c.HistoryLimit, MaxHistoryLimit)
	}
	if err := validateAllowedHosts(c.AllowedHosts); err != nil {
		return err
	}
	if err := c.validateDevLogin(); err != nil {
		return err
	}
	if c.Dispatchers < 0 || c.Dispatchers > MaxDispatchers {
		return fmt.Errorf("dispatch: Dispatchers %d out of range 0..%d (0: one)", c.Dispatchers, MaxDispatchers)
	}
	if c.MaxRequestBodySize < 0 || c.MaxGroupMembers < 0 {
		return fmt.Errorf("dispatch: negative MaxRequestBodySize %d or MaxGroupMembers %d", c.MaxRequestBodySize, c.MaxGroupMembers)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ReadTimeout", c.ReadTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"IdleTimeout", c.IdleTimeout},
		{"BackendTimeout", c.BackendTimeout},
		{"CheckTimeout", c.CheckTimeout},
		{"SendTimeout", c.SendTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("dispatch: negative %s %v", d.name, d.v)
		}
	}
	return nil
}

// withDefaults returns c with every zero field set to its default. It is the one place
// defaults are applied.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.HistoryLimit == 0 {
		c.HistoryLimit = MaxHistoryLimit
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxRequestBodySize == 0 {
		c.MaxRequestBodySize = 1 << 20
	}
	if c.BackendTimeout == 0 {
		c.BackendTimeout = 3 * time.Second
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = health.DefaultTimeout
	}
	if c.DevLogin != nil && c.DevLoginTTL == 0 {
		c.DevLoginTTL = DefaultDevLoginTTL
	}
	if c.MaxGroupMembers == 0 {
		c.MaxGroupMembers = DefaultMaxGroupMembers
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Server is the dispatcher's HTTP API (see the package documentation for the routes).
type Server struct {
	cfg      Config
	log      *slog.Logger
	picker   *Picker
	history  History
	presence Presence
	admin    Admin
	health   *health.Checker
	page     map[string]pageFile
	devLogin TokenIssuer
	metrics  fasthttp.RequestHandler // nil: no /metrics
	picks    pickCounts
	groups   Groups
	caches   GroupCaches
	outbox   Outbox
	relay    Relay
	results  *Results
	ids      IDs
	access   accessControl
	http     *fasthttp.Server
	errLog   logThrottle

	// base is the parent context of backend calls and checks; cancelled by Shutdown.
	base   context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// ln is the listener being served, nil before Serve. Guarded by mu.
	ln net.Listener
	// closed is set by Shutdown. Guarded by mu.
	closed bool
	// served is closed when the Serve goroutine of Start returns; nil without Start.
	// Guarded by mu.
	served chan struct{}
}

// New validates cfg and deps and returns a Server that is not yet listening.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Nodes == nil {
		return nil, errors.New("dispatch: Deps.Nodes is required")
	}
	if (deps.Outbox != nil || deps.Relay != nil) && (deps.Results == nil || deps.IDs == nil) {
		return nil, errors.New("dispatch: Deps.Outbox and Deps.Relay need Deps.Results and Deps.IDs")
	}
	cfg = cfg.withDefaults()
	checker, err := health.New(deps.Health, cfg.CheckTimeout, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("dispatch: Deps.Health: %w", err)
	}
	page, err := loadPage(deps.Web)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		picker:   NewPicker(deps.Nodes, cfg.Dispatchers),
		history:  deps.History,
		presence: deps.Presence,
		admin:    deps.Admin,
		health:   checker,
		page:     page,
		devLogin: cfg.DevLogin,
		metrics:  metricsHandler(deps.Metrics),
		groups:   deps.Groups,
		caches:   deps.GroupCaches,
		outbox:   deps.Outbox,
		relay:    deps.Relay,
		results:  deps.Results,
		ids:      deps.IDs,
		access:   newAccessControl(cfg),
	}
	if s.access.open() {
		s.log.Warn("dispatch: history and presence are unauthenticated: anyone who reaches " + cfg.Addr +
			" reads every inbox; configure a token secret or an API key")
	}
	if s.devLogin != nil {
		s.log.Warn("DEV LOGIN IS ON: POST " + routeDevLogin + " gives anyone who reaches " + cfg.Addr +
			" a token for any user; for development only, never in production (docs/security.md)")
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.http = &fasthttp.Server{
		Handler:               s.handle,
		ErrorHandler:          s.handleParseError,
		Name:                  "imgate",
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		MaxRequestBodySize:    cfg.MaxRequestBodySize,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{s.log},
		MaxIdleWorkerDuration: 10 * time.Second,
	}
	return s, nil
}

// Serve answers requests on ln until Shutdown, then returns nil. It returns an error
// when ln fails, and at once when called after Shutdown or while already serving.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.register(ln, nil); err != nil {
		_ = ln.Close()
		return err
	}
	return s.serve(ln)
}

// Start listens on Config.Addr and serves in the background; it returns once the
// listener is bound, so Addr is valid and connections are accepted. ctx bounds only
// the bind. An error of the background Serve is logged; Shutdown stops it.
func (s *Server) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dispatch: listen %s: %w", s.cfg.Addr, err)
	}
	served := make(chan struct{})
	if err := s.register(ln, served); err != nil {
		_ = ln.Close()
		return err
	}
	go func() {
		defer close(served)
		if err := s.serve(ln); err != nil {
			s.log.Error("dispatch: serve stopped", "err", err)
		}
	}()
	return nil
}

// register records ln as the listener, and served as the channel Shutdown waits for.
func (s *Server) register(ln net.Listener, served chan struct{}) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("dispatch: server is shut down")
	case s.ln != nil:
		return errors.New("dispatch: already serving")
	}
	s.ln, s.served = ln, served
	return nil
}

// serve runs fasthttp on the registered ln until Shutdown or a listener failure.
func (s *Server) serve(ln net.Listener) error {
	err := s.http.Serve(ln)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || err == nil {
		return nil
	}
	return fmt.Errorf("dispatch: serve: %w", err)
}

// Addr returns the address being served, nil before Serve or Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops accepting connections, waits for the requests in progress to finish
// (or for ctx to end, then cancels the backend calls still running) and closes the
// connections. It returns ctx.Err() when ctx ended first. Calling it again is harmless.
// fasthttp's idle-worker cleaner goroutine notices the stop within 10 s afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	ln, served := s.ln, s.served
	s.mu.Unlock()

	err := s.http.ShutdownWithContext(ctx)
	s.cancel()
	if ln != nil {
		// Serve may have recorded ln before fasthttp did; closing it ends that Serve.
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = fmt.Errorf("dispatch: close listener: %w", cerr)
		}
	}
	if served != nil {
		select {
		case <-served:
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
		}
	}
	return err
}

// fasthttpLogger routes fasthttp's own messages to slog at warn level.
type fasthttpLogger struct{ log *slog.Logger }

// Printf logs one fasthttp message.
func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("dispatch: fasthttp: " + fmt.Sprintf(format, args...))
}

// Ensure the fasthttp logger contract holds.
var _ fasthttp.Logger = fasthttpLogger{}
