package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"imgate/bench/baseline"
)

// WorkerEnv is set to "1" in the environment of worker processes started by --procs. A binary
// that embeds bench (cmd/imgate, or a test binary's TestMain) starts the worker by calling
// Main with the single argument "--worker"; the worker reads its Config as JSON from stdin and
// writes Events as JSON lines to stdout.
const WorkerEnv = "IMGATE_BENCH_WORKER"

// workerCommand returns the program and arguments that start a worker: this executable with
// `bench --worker` (the imgate binary's subcommand syntax).
var workerCommand = func() (string, []string, error) {
	exe, err := os.Executable()
	return exe, []string{"bench", "--worker"}, err
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

type rateFlag struct{ v *float64 }

func (r rateFlag) String() string {
	if r.v == nil {
		return ""
	}
	return strconv.FormatFloat(*r.v, 'f', -1, 64)
}
func (r rateFlag) Set(s string) error {
	v, err := parseRate(s)
	if err == nil {
		*r.v = v
	}
	return err
}

// Main is the `imgate bench` subcommand: args are the arguments after "bench". It returns the
// process exit code: 0 success, 1 the run found lost messages or failed, 2 bad usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "--worker", "-worker":
			return workerMain(ctx, os.Stdin, stdout, stderr)
		case "baseline":
			return baseline.Main(ctx, args[1:], stderr)
		}
	}
	cfg := DefaultConfig()
	var (
		urls, srcIPs listFlag
		pids         listFlag
		conns        int
		asJSON       bool
		quiet        bool
		cpuProfile   string
		apiKeyFile   string
	)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: imgate bench [flags]            (load generator; see package doc)")
		fmt.Fprintln(stderr, "       imgate bench baseline --addr A  (reference gorilla/websocket server)")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Dispatcher, "dispatcher", "", "dispatcher base URL (`http://host:port`): each client asks GET /api/v1/nodes/pick?userId=U")
	fs.Var(&urls, "url", "WebSocket URL(s) (`ws://host:port/ws`), repeatable or comma-separated, used round-robin")
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "idle | p2p | devices | churn | groups | storm")
	fs.DurationVar(&cfg.StormJitter, "storm-jitter", cfg.StormJitter, "storm scenario: a dropped connection reconnects after a random delay in [0, this)")
	fs.DurationVar(&cfg.StormMax, "storm-max", cfg.StormMax, "storm scenario: stop reconnecting this long after the first drop")
	fs.IntVar(&cfg.GroupSize, "group-size", 10, "groups scenario: members per group (each member one user with --devices connections)")
	fs.IntVar(&cfg.Groups, "groups", 1, "groups scenario: groups, created through the server API before connecting; users = groups × group-size")
	fs.StringVar(&cfg.API, "api", "", "groups scenario: server API base URL (`http://host:port`; default --dispatcher)")
	fs.StringVar(&apiKeyFile, "api-key-file", "", "groups scenario: file holding the server API key (default: the IMGATE_API_KEY environment variable)")
	fs.IntVar(&conns, "conns", 0, "connections (idle, p2p: one user each; churn: most cycles at once; devices: users × devices)")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "users (devices scenario; elsewhere the same as --conns)")
	fs.IntVar(&cfg.Devices, "devices", 0, "connections per user (devices scenario, default 3; p2p 1)")
	fs.IntVar(&cfg.Procs, "procs", cfg.Procs, "worker processes (each holds at most 19,000 connections)")
	fs.Var(&srcIPs, "src-ips", "source addresses, ranges and lists (`127.0.0.2-127.0.0.20`), used round-robin")
	fs.Var(rateFlag{&cfg.RateConnect}, "rate-connect", "new connections per second over all processes (`N/s`, 0 = unpaced)")
	fs.Var(rateFlag{&cfg.Rate}, "rate", "p2p/devices: messages per second over all processes, 0 = as fast as ACKs allow with --inflight; churn: cycles per second, 0 = unpaced")
	fs.IntVar(&cfg.Inflight, "inflight", cfg.Inflight, "unacknowledged messages per connection when --rate 0")
	fs.Int64Var(&cfg.Messages, "messages", 0, "stop after this many messages (churn: cycles) over all processes (0 = only --duration)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "hold (idle), send (p2p, devices) or churn time")
	fs.DurationVar(&cfg.Keepalive, "keepalive", cfg.Keepalive, "keepalive interval per connection (below the server's 60s idle timeout)")
	fs.StringVar(&cfg.KeepaliveKind, "keepalive-kind", cfg.KeepaliveKind, "keepalive (msgType 9) or ping (WebSocket ping)")
	fs.DurationVar(&cfg.Grace, "grace", cfg.Grace, "after sending, wait up to this long for outstanding ACKs and deliveries")
	fs.DurationVar(&cfg.InitTimeout, "init-timeout", cfg.InitTimeout, "bound on dial + upgrade + CONNECT_INIT → ACK, and on each write")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "hard deadline of the whole run (0 = ramp + duration + grace + 2×init-timeout + 1m)")
	fs.IntVar(&cfg.MsgSize, "msg-size", cfg.MsgSize, "bytes of text per message")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", cfg.UserPrefix, "user ids are <prefix>-<n>")
	fs.StringVar(&cfg.Token, "token", "", "token sent in CONNECT_INIT")
	fs.StringVar(&cfg.Protocol, "protocol", cfg.Protocol, "client protocol: imgate (PROTOCOL.md) or centrifugo (Centrifugo v6 JSON protocol, personal channels)")
	fs.StringVar(&cfg.CentSecret, "centrifugo-secret", cfg.CentSecret, "HMAC secret signing the HS256 connection JWTs (--protocol centrifugo; Centrifugo's client.token.hmac_secret_key)")
	fs.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()), "random seed")
	fs.Var(&pids, "pid", "server process id whose VmRSS is measured (repeatable)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&quiet, "quiet", false, "no progress line on stderr")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the generator to `file` (with --procs 1)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Devices == 0 {
		cfg.Devices = 1
		if cfg.Scenario == ScenarioDevices {
			cfg.Devices = 3
		}
	}
	if cfg.Scenario == ScenarioGroups {
		if conns > 0 || set["users"] {
			fmt.Fprintln(stderr, "bench: the groups scenario takes --groups and --group-size, not --conns or --users")
			return 2
		}
		cfg.Users = cfg.Groups * cfg.GroupSize
		key, err := apiKey(apiKeyFile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		cfg.APIKey = key
	}
	if conns > 0 {
		if set["users"] && cfg.Scenario != ScenarioDevices {
			fmt.Fprintln(stderr, "bench: give --conns or --users, not both")
			return 2
		}
		if !set["users"] {
			cfg.Users = max(conns/cfg.Devices, 1)
		}
	}
	cfg.URLs = urls
	if len(srcIPs) > 0 {
		ips, err := parseAddrRange(srcIPs.String())
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		cfg.SrcIPs = ips
	}
	var pidList []int
	for _, p := range pids {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "bench: bad --pid %q\n", p)
			return 2
		}
		pidList = append(pidList, n)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile) //nolint:gosec // G304: the operator names the profile file
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	progress := stderr
	if quiet {
		progress = nil
	}
	rep, err := Run(ctx, cfg, pidList, progress)
	if err != nil {
		fmt.Fprintln(stderr, err)
		if rep == nil {
			return 1
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.WriteTable(stdout)
	}
	if err != nil || rep.Audit.Lost > 0 || rep.TimedOut || rep.SetupFailed {
		return 1
	}
	return 0
}

// apiKey returns the server API key: the content of file without one trailing newline, or
// IMGATE_API_KEY when file is empty. It is never an argument (argv is visible to every user).
func apiKey(file string) (string, error) {
	if file == "" {
		return os.Getenv("IMGATE_API_KEY"), nil
	}
	b, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the key file
	if err != nil {
		return "", fmt.Errorf("bench: --api-key-file: %w", err)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

// Run executes a validated configuration (in this process, or in cfg.Procs worker processes)
// and returns the report. progress, when not nil, receives a status line every second.
func Run(ctx context.Context, cfg Config, pids []int, progress io.Writer) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout+15*time.Second)
	defer cancel()
	if cfg.RunID == "" {
		cfg.RunID = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	agg := newAggregator(cfg, pids, progress)
	stop := agg.startAll()
	total := &Result{}
	var runErr error
	if cfg.Procs == 1 {
		wc := cfg
		wc.Timeout = cfg.Timeout
		total = newWorker(wc, agg.onEvent).run(ctx)
	} else {
		results, err := runProcs(ctx, cfg, agg.onEvent)
		runErr = err
		for _, r := range results {
			total.merge(r)
		}
	}
	stop()
	rep := buildReport(cfg, total, agg)
	if len(agg.failed) > 0 {
		rep.WorkerFailures = len(agg.failed)
	}
	return rep, runErr
}

// splitConfig returns the Config of worker i of n: users, rates and bounds divided.
func splitConfig(cfg Config, i, n int) Config {
	wc := cfg
	wc.Worker = i
	wc.Procs = 1
	share := func(total int64) int64 {
		q, r := total/int64(n), total%int64(n)
		if int64(i) < r {
			q++
		}
		return q
	}
	wc.Users = int(share(int64(cfg.Users)))
	first := 0
	for j := 0; j < i; j++ {
		first += cfg.Users / n
		if j < cfg.Users%n {
			first++
		}
	}
	wc.FirstIdx = cfg.FirstIdx + first
	if cfg.Scenario == ScenarioGroups {
		// Whole groups per worker: a group's messages and their audit stay in one process.
		wc.Groups = int(share(int64(cfg.Groups)))
		wc.Users = wc.Groups * cfg.GroupSize
		firstGroup := 0
		for j := 0; j < i; j++ {
			firstGroup += cfg.Groups / n
			if j < cfg.Groups%n {
				firstGroup++
			}
		}
		wc.FirstIdx = cfg.FirstIdx + firstGroup*cfg.GroupSize
	}
	wc.RateConnect = cfg.RateConnect / float64(n)
	wc.Rate = cfg.Rate / float64(n)
	if cfg.Messages > 0 {
		wc.Messages = max(share(cfg.Messages), 1)
	}
	wc.Seed = cfg.Seed + uint64(i)*0x9E3779B97F4A7C15
	return wc
}

// runProcs starts cfg.Procs workers and feeds their events to emit until all have exited.
func runProcs(ctx context.Context, cfg Config, emit func(Event)) ([]*Result, error) {
	exe, args, err := workerCommand()
	if err != nil {
		return nil, fmt.Errorf("bench: cannot find own executable: %w", err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []*Result
		errs    []error
	)
	for i := 0; i < cfg.Procs; i++ {
		wc := splitConfig(cfg, i, cfg.Procs)
		in, _ := json.Marshal(wc)                     //nolint:gosec // G117: the API key goes to our own worker on its stdin (not argv), as documented
		cmd := exec.CommandContext(ctx, exe, args...) //nolint:gosec // G204: this binary re-executed as a worker
		cmd.Env = append(os.Environ(), WorkerEnv+"=1")
		cmd.Stdin = strings.NewReader(string(in))
		cmd.Stderr = os.Stderr
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("bench: start worker %d: %w", i, err)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var got *Result
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			for sc.Scan() {
				var ev Event
				if json.Unmarshal(sc.Bytes(), &ev) != nil {
					continue
				}
				ev.Worker = i
				if ev.Kind == "result" {
					got = ev.Result
				}
				emit(ev)
			}
			werr := cmd.Wait()
			mu.Lock()
			defer mu.Unlock()
			if got == nil {
				errs = append(errs, fmt.Errorf("bench: worker %d ended without a result: %v", i, werr))
				emit(Event{Kind: "failed", Worker: i})
				return
			}
			results = append(results, got)
		}(i)
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

// workerMain runs one worker: Config from in, Events as JSON lines to out.
func workerMain(ctx context.Context, in io.Reader, out, stderr io.Writer) int {
	var cfg Config
	if err := json.NewDecoder(in).Decode(&cfg); err != nil {
		fmt.Fprintln(stderr, "bench worker: config:", err)
		return 2
	}
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(ev)
	}
	res := newWorker(cfg, emit).run(ctx)
	emit(Event{Kind: "result", Worker: cfg.Worker, Result: res})
	return 0
}
