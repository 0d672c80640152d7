package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Scenario names.
const (
	ScenarioIdle    = "idle"
	ScenarioP2P     = "p2p"
	ScenarioDevices = "devices"
	ScenarioChurn   = "churn"
	ScenarioGroups  = "groups"
	ScenarioStorm   = "storm"
)

// MaxConnsPerProc is the most connections one process holds: the machine allows 20,000 open
// files per process and a process needs some for itself.
const MaxConnsPerProc = 19000

// maxDevices bounds devices per user: the loss audit keeps one bit per device of the receiver
// and of the sender in a 64-bit mask.
const maxDevices = 32

// Config is one run of the generator. The parent process splits it into one Config per worker
// (Worker, Procs, Users and rates divided); a worker receives its Config as JSON on stdin.
type Config struct {
	Dispatcher    string        `json:"dispatcher,omitempty"` // base URL; empty = use URLs
	URLs          []string      `json:"urls,omitempty"`       // WebSocket URLs, used round-robin
	Scenario      string        `json:"scenario"`
	Users         int           `json:"users"`   // users (p2p, devices, idle: one connection each)
	Devices       int           `json:"devices"` // connections per user (devices); 1 otherwise
	Procs         int           `json:"procs"`
	SrcIPs        []string      `json:"srcIps,omitempty"`
	RateConnect   float64       `json:"rateConnect"` // new connections per second (all processes); 0 = unpaced
	Rate          float64       `json:"rate"`        // messages/s (p2p, devices) or cycles/s (churn); 0 = windowed / unpaced
	Inflight      int           `json:"inflight"`    // unacknowledged messages per connection when Rate is 0
	Messages      int64         `json:"messages"`    // stop sending after this many messages (0 = no bound)
	Duration      time.Duration `json:"duration"`    // hold (idle), send (p2p, devices) or churn time
	Keepalive     time.Duration `json:"keepalive"`
	KeepaliveKind string        `json:"keepaliveKind"` // "keepalive" (msgType 9) or "ping" (WebSocket ping)
	Grace         time.Duration `json:"grace"`         // wait for in-flight ACKs and deliveries after sending
	InitTimeout   time.Duration `json:"initTimeout"`   // dial + upgrade + CONNECT_INIT → ACK
	Timeout       time.Duration `json:"timeout"`       // hard deadline of the whole run (0 = derived)
	MsgSize       int           `json:"msgSize"`       // bytes of the msg text
	UserPrefix    string        `json:"userPrefix"`
	Token         string        `json:"token,omitempty"`
	Protocol      string        `json:"protocol"`             // ProtocolImgate or ProtocolCentrifugo
	CentSecret    string        `json:"centSecret,omitempty"` // HMAC secret of Centrifugo connection JWTs
	Seed          uint64        `json:"seed"`
	ReadBuffer    int           `json:"readBuffer"`

	// storm scenario (storm.go): after the ramp, wait up to Duration for connections to
	// drop, then reconnect each dropped one through Dispatcher, first after a random delay
	// in [0, StormJitter), then with backoff; give up StormMax after the first drop.
	StormJitter time.Duration `json:"stormJitter,omitempty"`
	StormMax    time.Duration `json:"stormMax,omitempty"`

	// groups scenario: Groups groups of GroupSize members each (Users = Groups × GroupSize,
	// member j of group g is user g×GroupSize+j), created through the server API at API
	// (default: the dispatcher) with APIKey. Sent to workers on stdin, never in argv.
	GroupSize int    `json:"groupSize,omitempty"`
	Groups    int    `json:"groups,omitempty"`
	API       string `json:"api,omitempty"`
	APIKey    string `json:"apiKey,omitempty"`

	// Set by the parent for each worker.
	// RunID makes this run's clientMsgIds differ from every earlier run's: the server
	// treats a clientMsgId it has stored for the same sender as a resend (ACKed again,
	// delivered to nobody), and the users are the same from run to run.
	RunID    string `json:"runId"`
	Worker   int    `json:"worker"`
	FirstIdx int    `json:"firstIdx"` // first user index of this worker (user ids stay unique across workers)
}

// prefixRune reports whether r may appear in --user-prefix.
func prefixRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.'
}

// DefaultConfig returns the flag defaults.
func DefaultConfig() Config {
	return Config{ //nolint:gosec // G101: no credential here (a token flag's empty default)
		Scenario: ScenarioIdle, Users: 100, Devices: 1, Procs: 1, RateConnect: 2000,
		Inflight: 4, Duration: 10 * time.Second, Keepalive: 30 * time.Second, KeepaliveKind: "keepalive",
		Grace: 3 * time.Second, InitTimeout: 10 * time.Second, MsgSize: 32, UserPrefix: "bench",
		ReadBuffer: 2048, Protocol: ProtocolImgate, CentSecret: "imgate-bench-secret",
		StormJitter: time.Second, StormMax: 2 * time.Minute,
	}
}

// Conns returns the number of connections the run holds.
func (c *Config) Conns() int { return c.Users * c.Devices }

// Validate checks the configuration and fills derived values.
func (c *Config) Validate() error {
	switch c.Scenario {
	case ScenarioIdle, ScenarioChurn, ScenarioP2P:
		if c.Devices != 1 && c.Scenario != ScenarioP2P {
			return fmt.Errorf("bench: --devices is for the devices and p2p scenarios")
		}
	case ScenarioDevices:
	case ScenarioStorm:
		if err := c.validateStorm(); err != nil {
			return err
		}
	case ScenarioGroups:
		if err := c.validateGroups(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("bench: unknown scenario %q (idle, p2p, devices, churn, groups, storm)", c.Scenario)
	}
	switch c.Protocol {
	case ProtocolImgate:
	case ProtocolCentrifugo:
		if c.Dispatcher != "" {
			return errors.New("bench: --protocol centrifugo dials --url (ws://host:port/connection/websocket), not a dispatcher")
		}
		if c.CentSecret == "" {
			return errors.New("bench: --centrifugo-secret is empty")
		}
	default:
		return fmt.Errorf("bench: unknown protocol %q (imgate, centrifugo)", c.Protocol)
	}
	if c.Dispatcher == "" && len(c.URLs) == 0 {
		return errors.New("bench: give --dispatcher or --url")
	}
	if c.Dispatcher != "" && len(c.URLs) > 0 && c.Scenario != ScenarioStorm {
		return errors.New("bench: --dispatcher and --url are exclusive")
	}
	for _, u := range c.URLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "ws" && p.Scheme != "wss") {
			return fmt.Errorf("bench: bad --url %q (want ws://host:port/path)", u)
		}
	}
	if c.Dispatcher != "" {
		if p, err := url.Parse(c.Dispatcher); err != nil || (p.Scheme != "http" && p.Scheme != "https") {
			return fmt.Errorf("bench: bad --dispatcher %q (want http://host:port)", c.Dispatcher)
		}
	}
	if c.Devices < 1 || c.Devices > maxDevices {
		return fmt.Errorf("bench: --devices must be 1..%d", maxDevices)
	}
	if c.Users < 1 {
		return errors.New("bench: --conns/--users must be at least 1")
	}
	if (c.Scenario == ScenarioP2P || c.Scenario == ScenarioDevices) && c.Users < 2 {
		return errors.New("bench: p2p and devices need at least 2 users")
	}
	if c.Procs < 1 {
		return errors.New("bench: --procs must be at least 1")
	}
	if per := (c.Conns() + c.Procs - 1) / c.Procs; per > MaxConnsPerProc {
		return fmt.Errorf("bench: %d connections per process exceed %d (20,000 open files per process): raise --procs to %d",
			per, MaxConnsPerProc, (c.Conns()+MaxConnsPerProc-1)/MaxConnsPerProc)
	}
	if c.Scenario == ScenarioGroups && c.Groups < c.Procs {
		return errors.New("bench: groups are never split between processes: give at least as many --groups as --procs")
	}
	if (c.Scenario == ScenarioP2P || c.Scenario == ScenarioDevices) && c.Users < 2*c.Procs {
		return errors.New("bench: p2p and devices need at least 2 users per process")
	}
	if c.Users < c.Procs {
		return errors.New("bench: fewer users than processes")
	}
	if c.Inflight < 1 {
		return errors.New("bench: --inflight must be at least 1")
	}
	if c.KeepaliveKind != "keepalive" && c.KeepaliveKind != "ping" {
		return errors.New("bench: --keepalive-kind is keepalive or ping")
	}
	if c.Duration <= 0 {
		return errors.New("bench: --duration must be positive")
	}
	if c.MsgSize < 0 || c.MsgSize > 60000 {
		return errors.New("bench: --msg-size must be 0..60000")
	}
	for _, r := range c.UserPrefix {
		if !prefixRune(r) {
			return errors.New("bench: --user-prefix may hold letters, digits, '_' and '.' only")
		}
	}
	for _, ip := range c.SrcIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("bench: bad source address %q", ip)
		}
	}
	if c.Timeout == 0 {
		c.Timeout = c.DerivedTimeout()
	}
	return nil
}

// DerivedTimeout is the default hard deadline: ramp time at the connect rate plus the scenario's
// duration plus the grace period, doubled init timeout, and a minute of slack.
func (c *Config) DerivedTimeout() time.Duration {
	ramp := time.Duration(0)
	if c.RateConnect > 0 {
		ramp = time.Duration(float64(c.Conns()) / c.RateConnect * float64(time.Second))
	}
	d := ramp + c.Duration + c.Grace + 2*c.InitTimeout + time.Minute
	if c.Scenario == ScenarioStorm {
		d += c.StormMax
	}
	return d
}

// parseRate accepts "500", "500/s", "1.5k/s".
func parseRate(s string) (float64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	mul := 1.0
	if strings.HasSuffix(s, "k") {
		mul, s = 1000, strings.TrimSuffix(s, "k")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bench: bad rate %q (want N or N/s)", s)
	}
	return v * mul, nil
}

// parseAddrRange expands "127.0.0.2-127.0.0.20,127.0.1.1" into addresses.
func parseAddrRange(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("bench: bad source address %q", lo)
		}
		if !isRange {
			out = append(out, a.String())
			continue
		}
		b, err := netip.ParseAddr(hi)
		if err != nil || b.Less(a) || a.Is4() != b.Is4() {
			return nil, fmt.Errorf("bench: bad source range %q", part)
		}
		for x := a; ; x = x.Next() {
			out = append(out, x.String())
			if len(out) > 65536 {
				return nil, fmt.Errorf("bench: source range %q too large", part)
			}
			if x == b {
				break
			}
		}
	}
	return out, nil
}
