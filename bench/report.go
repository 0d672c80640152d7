package bench

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// aggregator merges the workers' progress events, prints the live line and samples server RSS.
type aggregator struct {
	cfg   Config
	pids  []int
	out   io.Writer
	start time.Time

	mu             sync.Mutex // guards the fields below
	latest         map[int]*Progress
	ackIv, dlvIv   *Histogram
	last           [4]uint64 // sent, acked, delivered, cycles at the previous line
	lastAt         time.Time
	rssBefore      map[int]int64
	rssSteady      map[int]int64
	steadyLive     int64
	steadySampled  time.Time
	failed         map[int]bool
	cpuStart       map[int]int64 // server CPU ticks when every worker was sending
	cpuEnd         map[int]int64 // ... when the first worker stopped sending
	cpuT0, cpuT1   time.Time
	seen           map[int]bool // workers heard from since the last line
	stop, finished chan struct{}
}

func newAggregator(cfg Config, pids []int, out io.Writer) *aggregator {
	return &aggregator{
		cfg: cfg, pids: pids, out: out, latest: map[int]*Progress{},
		ackIv: new(Histogram), dlvIv: new(Histogram),
		rssBefore: map[int]int64{}, rssSteady: map[int]int64{}, failed: map[int]bool{}, seen: map[int]bool{},
		cpuStart: map[int]int64{}, cpuEnd: map[int]int64{},
		stop: make(chan struct{}), finished: make(chan struct{}),
	}
}

func (a *aggregator) onEvent(ev Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch ev.Kind {
	case "failed":
		a.failed[ev.Worker] = true
	case "progress":
		p := ev.Progress
		a.latest[ev.Worker] = p
		a.ackIv.mergeSparse(p.Ack)
		a.dlvIv.mergeSparse(p.Dlv)
		a.sampleSteadyLocked(false)
		a.sampleCPULocked()
		a.seen[ev.Worker] = true
		if len(a.seen)+len(a.failed) >= a.cfg.Procs && time.Since(a.lastAt) >= 900*time.Millisecond {
			a.lineLocked()
		}
	}
}

// sampleSteadyLocked records server RSS while every worker holds its connections (phases hold,
// send, grace, churn); the last such sample is the steady state. force bypasses the 500 ms limit.
func (a *aggregator) sampleSteadyLocked(force bool) {
	if len(a.pids) == 0 || len(a.latest) < a.cfg.Procs {
		return
	}
	var live int64
	for _, p := range a.latest {
		switch p.Phase {
		case "hold", "send", "grace", "churn":
		default:
			return
		}
		live += p.Live
	}
	if !force && time.Since(a.steadySampled) < 500*time.Millisecond {
		return
	}
	a.steadySampled = time.Now()
	for _, pid := range a.pids {
		a.rssSteady[pid] = readRSSKB(pid)
	}
	a.steadyLive = live
}

// sampleCPULocked reads the servers' CPU time when every worker has entered the send phase and
// again when the first one leaves it: the servers' CPU use while messages were being sent.
func (a *aggregator) sampleCPULocked() {
	if len(a.pids) == 0 || len(a.latest) < a.cfg.Procs || !a.cpuT1.IsZero() {
		return
	}
	sending, after := 0, 0
	for _, p := range a.latest {
		switch p.Phase {
		case "send":
			sending++
		case "grace", "close":
			after++
		}
	}
	switch {
	case a.cpuT0.IsZero() && sending == len(a.latest):
		a.cpuT0 = time.Now()
		for _, pid := range a.pids {
			a.cpuStart[pid] = readCPUTicks(pid)
		}
	case !a.cpuT0.IsZero() && after > 0:
		a.cpuT1 = time.Now()
		for _, pid := range a.pids {
			a.cpuEnd[pid] = readCPUTicks(pid)
		}
	}
}

func (a *aggregator) begin() {
	a.start = time.Now()
	a.lastAt = a.start
	for _, pid := range a.pids {
		a.rssBefore[pid] = readRSSKB(pid)
	}
}

// start reads RSS before the ramp and starts the progress line; stop ends it.
func (a *aggregator) startLine() (stop func()) {
	go func() {
		defer close(a.finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-t.C:
				a.mu.Lock()
				if time.Since(a.lastAt) >= 2*time.Second { // a worker is late: print what we have
					a.lineLocked()
				}
				a.mu.Unlock()
			}
		}
	}()
	return func() { close(a.stop); <-a.finished }
}

// lineLocked prints the progress line: rates since the previous line.
func (a *aggregator) lineLocked() {
	a.sampleSteadyLocked(false)
	clear(a.seen)
	if a.out == nil {
		a.lastAt = time.Now()
		return
	}
	var cur [4]uint64
	var live, att int64
	var errs uint64
	phases := map[string]int{}
	for _, p := range a.latest {
		cur[0] += p.Sent
		cur[1] += p.Acked
		cur[2] += p.Delivered
		cur[3] += p.Cycles
		live += p.Live
		att += p.Attempted
		errs += p.Errors
		phases[p.Phase]++
	}
	now := time.Now()
	dt := now.Sub(a.lastAt).Seconds()
	if dt <= 0 {
		dt = 1
	}
	rate := func(i int) float64 { return float64(cur[i]-a.last[i]) / dt }
	names := make([]string, 0, len(phases))
	for ph := range phases {
		names = append(names, ph)
	}
	sort.Strings(names)
	msg := fmt.Sprintf("[%5.0fs] %-6s conns %d/%d", now.Sub(a.start).Seconds(), strings.Join(names, "+"), live, att)
	if a.cfg.Scenario == ScenarioChurn {
		msg += fmt.Sprintf("  cycles %.0f/s", rate(3))
	} else {
		msg += fmt.Sprintf("  sent %.0f/s acked %.0f/s dlv %.0f/s  ack p99 %s dlv p99 %s",
			rate(0), rate(1), rate(2), fmtDur(a.ackIv.Quantile(0.99)), fmtDur(a.dlvIv.Quantile(0.99)))
	}
	msg += fmt.Sprintf("  errors %d", errs)
	fmt.Fprintln(a.out, msg)
	a.last, a.lastAt = cur, now
	a.ackIv, a.dlvIv = new(Histogram), new(Histogram)
}

func (a *aggregator) startAll() (stop func()) {
	a.begin()
	return a.startLine()
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// ServerRSS is the memory of one server process (--pid).
type ServerRSS struct {
	Pid          int     `json:"pid"`
	BeforeKB     int64   `json:"beforeKb"`
	SteadyKB     int64   `json:"steadyKb"`
	GrowthKB     int64   `json:"growthKb"`
	Conns        int64   `json:"conns"`        // connections bound when SteadyKB was read
	BytesPerConn float64 `json:"bytesPerConn"` // growth / conns
	// CPUCores is the server's CPU time while messages were sent ÷ that wall time (1.0 = one
	// core busy); 0 when not measured (idle, churn, no --pid).
	CPUCores float64 `json:"cpuCores,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Scenario string  `json:"scenario"`
	Target   string  `json:"target"`
	Procs    int     `json:"procs"`
	Users    int     `json:"users"`
	Devices  int     `json:"devices"`
	Duration string  `json:"duration"`
	Rate     float64 `json:"rate"`
	Inflight int     `json:"inflight,omitempty"`
	// groups scenario
	Groups    int `json:"groups,omitempty"`
	GroupSize int `json:"groupSize,omitempty"`

	Conns struct {
		Attempted   int64 `json:"attempted"`
		Bound       int64 `json:"bound"`
		DialFailed  int64 `json:"dialFailed"`
		InitFailed  int64 `json:"initFailed"`
		Dropped     int64 `json:"dropped"`
		ClosedClean int64 `json:"closedClean"`
		Live        int64 `json:"live"`
	} `json:"conns"`
	Messages struct {
		Sent          uint64 `json:"sent"`
		Acked         uint64 `json:"acked"`
		Refused       uint64 `json:"refused"`
		SendFailed    uint64 `json:"sendFailed"`
		Delivered     uint64 `json:"delivered"`
		DupAcks       uint64 `json:"dupAcks"`
		DupDeliveries uint64 `json:"dupDeliveries"`
		Foreign       uint64 `json:"foreign"`
		Misrouted     uint64 `json:"misrouted"`
		Keepalives    uint64 `json:"keepalives"`
		Cycles        uint64 `json:"cycles"`
		Missed        uint64 `json:"missed"`
	} `json:"messages"`
	Rates struct {
		Seconds   float64 `json:"seconds"`
		Sent      float64 `json:"sentPerSec"`
		Acked     float64 `json:"ackedPerSec"`
		Delivered float64 `json:"deliveredPerSec"`
		Cycles    float64 `json:"cyclesPerSec"`
	} `json:"rates"`
	Latency struct {
		Ack      Summary `json:"ack"`
		Delivery Summary `json:"delivery"`
		Connect  Summary `json:"connect"`
		Init     Summary `json:"init"`
		Pick     Summary `json:"pick"`
	} `json:"latency"`
	Audit          Audit             `json:"audit"`
	PerDevice      DeviceStats       `json:"perDevice"`
	CloseCodes     map[string]uint64 `json:"closeCodes,omitempty"`
	Errors         map[string]uint64 `json:"errors,omitempty"`
	Server         []ServerRSS       `json:"server,omitempty"`
	ServerTotal    *ServerRSS        `json:"serverTotal,omitempty"` // sum over --pid when several (Pid 0)
	GenRSSKB       int64             `json:"generatorRssKb"`
	GenBytesPerCon float64           `json:"generatorBytesPerConn"`
	// GenCPUSeconds is the CPU the generator's processes used (user + system), and
	// GenCPUPerConn that over the connection attempts, in µs: set beside the server's
	// figures, it shows when the generator, sharing the machine, is the limit.
	GenCPUSeconds  float64      `json:"generatorCpuSeconds"`
	GenCPUPerConn  float64      `json:"generatorCpuUsPerConnAttempt"`
	TimedOut       bool         `json:"timedOut"`
	SetupFailed    bool         `json:"setupFailed,omitempty"`
	WorkerFailures int          `json:"workerFailures,omitempty"`
	Storm          *StormReport `json:"storm,omitempty"`
}

func buildReport(cfg Config, r *Result, a *aggregator) *Report {
	rep := &Report{Scenario: cfg.Scenario, Procs: cfg.Procs, Users: cfg.Users, Devices: cfg.Devices,
		Duration: cfg.Duration.String(), Rate: cfg.Rate, TimedOut: r.TimedOut, SetupFailed: r.SetupFailed}
	if cfg.Scenario == ScenarioGroups {
		rep.Groups, rep.GroupSize = cfg.Groups, cfg.GroupSize
	}
	if cfg.Rate == 0 && cfg.Scenario != ScenarioIdle && cfg.Scenario != ScenarioChurn {
		rep.Inflight = cfg.Inflight
	}
	rep.Target = cfg.Dispatcher
	if rep.Target == "" {
		rep.Target = strings.Join(cfg.URLs, ",")
	} else if len(cfg.URLs) > 0 {
		rep.Target = strings.Join(cfg.URLs, ",") + ", reconnects " + cfg.Dispatcher
	}
	if r.Storm != nil {
		rep.Storm = buildStormReport(r.Storm)
	}
	c := &rep.Conns
	c.Attempted, c.Bound, c.DialFailed, c.InitFailed = r.Attempted, r.Bound, r.DialFailed, r.InitFailed
	c.Dropped, c.ClosedClean, c.Live = r.Dropped, r.ClosedClean, r.Live
	m := &rep.Messages
	m.Sent, m.Acked, m.Refused, m.SendFailed, m.Delivered = r.Sent, r.Acked, r.Refused, r.SendFailed, r.Delivered
	m.DupAcks, m.DupDeliveries, m.Foreign, m.Misrouted = r.DupAcks, r.DupDeliveries, r.Foreign, r.Misrouted
	m.Keepalives, m.Cycles, m.Missed = r.Keepalives, r.Cycles, r.Missed
	if s := r.SendSeconds; s > 0 {
		rep.Rates.Seconds = s
		rep.Rates.Sent = float64(r.Sent) / s
		rep.Rates.Acked = float64(r.Acked) / s
		rep.Rates.Delivered = float64(r.Delivered) / s
		rep.Rates.Cycles = float64(r.Cycles) / s
	}
	rep.Latency.Ack = FromSparse(r.AckHist).Summarize()
	rep.Latency.Delivery = FromSparse(r.DlvHist).Summarize()
	rep.Latency.Connect = FromSparse(r.ConnectHist).Summarize()
	rep.Latency.Init = FromSparse(r.InitHist).Summarize()
	rep.Latency.Pick = FromSparse(r.PickHist).Summarize()
	rep.Audit, rep.PerDevice = r.Audit, r.PerDevice
	rep.CloseCodes, rep.Errors = r.CloseCodes, r.Errors
	rep.GenRSSKB = r.GenRSSKB
	if r.Live > 0 {
		rep.GenBytesPerCon = float64(r.GenRSSKB*1024) / float64(r.Live)
	}
	rep.GenCPUSeconds = r.GenCPUSeconds
	if r.Attempted > 0 {
		rep.GenCPUPerConn = r.GenCPUSeconds * 1e6 / float64(r.Attempted)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pids) > 1 {
		total := ServerRSS{Conns: a.steadyLive}
		for _, pid := range a.pids {
			total.BeforeKB += a.rssBefore[pid]
			total.SteadyKB += a.rssSteady[pid]
		}
		total.GrowthKB = total.SteadyKB - total.BeforeKB
		if total.Conns > 0 {
			total.BytesPerConn = float64(total.GrowthKB*1024) / float64(total.Conns)
		}
		rep.ServerTotal = &total
	}
	for _, pid := range a.pids {
		s := ServerRSS{Pid: pid, BeforeKB: a.rssBefore[pid], SteadyKB: a.rssSteady[pid], Conns: a.steadyLive}
		if wall := a.cpuT1.Sub(a.cpuT0).Seconds(); !a.cpuT1.IsZero() && wall > 0.2 && a.cpuStart[pid] >= 0 && a.cpuEnd[pid] >= 0 {
			s.CPUCores = float64(a.cpuEnd[pid]-a.cpuStart[pid]) / clockTicks / wall
		}
		if s.SteadyKB > 0 && s.BeforeKB > 0 {
			s.GrowthKB = s.SteadyKB - s.BeforeKB
			if s.Conns > 0 && len(a.pids) == 1 {
				s.BytesPerConn = float64(s.GrowthKB*1024) / float64(s.Conns)
			}
		}
		rep.Server = append(rep.Server, s)
	}
	return rep
}

// WriteTable prints the report for people.
func (rep *Report) WriteTable(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	p("scenario\t%s\ttarget %s, procs %d, users %d × devices %d, duration %s", rep.Scenario, rep.Target, rep.Procs, rep.Users, rep.Devices, rep.Duration)
	c := rep.Conns
	p("connections\tbound %d of %d\tdial failed %d, init failed %d, dropped %d, live at end %d, closed cleanly %d",
		c.Bound, c.Attempted, c.DialFailed, c.InitFailed, c.Dropped, c.Live, c.ClosedClean)
	m := rep.Messages
	if rep.Scenario == ScenarioChurn {
		p("churn\t%d cycles\t%.0f cycles/s over %.1fs", m.Cycles, rep.Rates.Cycles, rep.Rates.Seconds)
	}
	if rep.Groups > 0 {
		p("groups\t%d × %d members\t", rep.Groups, rep.GroupSize)
	}
	if sends(rep.Scenario) {
		p("messages\tsent %d, acked %d, refused %d, delivered %d\twrite failed %d, dup ACKs %d, dup deliveries %d, foreign %d, misrouted %d",
			m.Sent, m.Acked, m.Refused, m.Delivered, m.SendFailed, m.DupAcks, m.DupDeliveries, m.Foreign, m.Misrouted)
		p("throughput\tsent %.0f/s, acked %.0f/s, delivered %.0f/s\tover %.2fs of sending", rep.Rates.Sent, rep.Rates.Acked, rep.Rates.Delivered, rep.Rates.Seconds)
	}
	if m.Missed > 0 {
		p("GENERATOR BEHIND\t%d paced sends skipped\tthe generator fell more than 1s behind --rate: lower it or add --procs/cores", m.Missed)
	}
	if m.Keepalives > 0 {
		p("keepalives\t%d answered\t", m.Keepalives)
	}
	_ = tw.Flush()
	writeLatencies(out, "latency", []namedSummary{{"ACK", rep.Latency.Ack}, {"delivery", rep.Latency.Delivery},
		{"connect", rep.Latency.Connect}, {"init", rep.Latency.Init}, {"pick", rep.Latency.Pick}})
	if rep.Storm != nil {
		rep.Storm.writeTable(out)
	}
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if sends(rep.Scenario) {
		a := rep.Audit
		p("loss audit\texpected %d, delivered %d, LOST %d, duplicated %d\texcluded (device dropped) %d, unexpected %d, unacked %d (of which delivered %d)",
			a.Expected, a.Delivered, a.Lost, a.Duplicated, a.ExcludedDropped, a.Unexpected, a.Unacked, a.UnackedDelivered)
		if rep.Groups > 0 {
			p("per member\t%d member devices lost at least one message\t", a.LossyDevices)
		}
		if d := rep.PerDevice; d.Devices > 0 {
			p("per device\tdeliveries min %d, mean %.1f, max %d\tover %d devices", d.Min, float64(d.Sum)/float64(d.Devices), d.Max, d.Devices)
		}
	}
	if len(rep.CloseCodes) > 0 {
		p("close codes\t%s\t(closes started by the server)", fmtMap(rep.CloseCodes))
	}
	if len(rep.Errors) > 0 {
		p("errors\t%s\t", fmtMap(rep.Errors))
	}
	for _, s := range rep.Server {
		if len(rep.Server) == 1 {
			p("server pid %d\tRSS %d KiB → %d KiB (+%d KiB)\t%.0f bytes per connection over %d connections", s.Pid, s.BeforeKB, s.SteadyKB, s.GrowthKB, s.BytesPerConn, s.Conns)
			if s.CPUCores > 0 {
				p("server CPU\t%.2f cores while sending\t%.0f acked messages per server CPU-second", s.CPUCores, rep.Rates.Acked/s.CPUCores)
			}
		} else {
			p("server pid %d\tRSS %d KiB → %d KiB (+%d KiB)\t", s.Pid, s.BeforeKB, s.SteadyKB, s.GrowthKB)
		}
	}
	if s := rep.ServerTotal; s != nil {
		p("servers total\tRSS %d KiB → %d KiB (+%d KiB)\t%.0f bytes per connection over %d connections", s.BeforeKB, s.SteadyKB, s.GrowthKB, s.BytesPerConn, s.Conns)
	}
	p("generator\tRSS %d KiB, CPU %.2f s\t%.0f bytes per live connection, %.0f µs of CPU per connection attempt", rep.GenRSSKB, rep.GenCPUSeconds, rep.GenBytesPerCon, rep.GenCPUPerConn)
	if rep.SetupFailed {
		p("SETUP FAILED\tthe groups could not be created (see errors)\t")
	}
	if rep.TimedOut {
		p("TIMED OUT\tthe hard deadline (--timeout) ended the run\t")
	}
	if rep.WorkerFailures > 0 {
		p("WORKERS FAILED\t%d\t", rep.WorkerFailures)
	}
	_ = tw.Flush()
}

// sends reports whether a scenario sends content messages.
func sends(scenario string) bool {
	return scenario == ScenarioP2P || scenario == ScenarioDevices || scenario == ScenarioGroups
}

func fmtMap(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// namedSummary is one row of a latency table.
type namedSummary struct {
	name string
	s    Summary
}

// writeLatencies writes the table title (count, p50 … mean) with one right-aligned row per
// summary that has observations.
func writeLatencies(out io.Writer, title string, rows []namedSummary) {
	lw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(lw, title+"\tcount\tp50\tp90\tp99\tp99.9\tmax\tmean\t")
	f := func(us float64) string { return fmtDur(time.Duration(us * 1e3)) }
	for _, l := range rows {
		if l.s.Count == 0 {
			continue
		}
		fmt.Fprintf(lw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", l.name, l.s.Count, f(l.s.P50), f(l.s.P90), f(l.s.P99), f(l.s.P999), f(l.s.Max), f(l.s.Mean))
	}
	_ = lw.Flush()
}
