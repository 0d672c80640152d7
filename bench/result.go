package bench

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Event is what a worker reports to the parent: a JSON line on the worker's stdout, or a
// function call when the worker runs in the parent's process.
type Event struct {
	Kind     string    `json:"kind"` // "progress" or "result"
	Worker   int       `json:"worker"`
	Progress *Progress `json:"progress,omitempty"`
	Result   *Result   `json:"result,omitempty"`
}

// Progress is a worker's state, sent every second and on each phase change. Counters are
// cumulative; the histograms hold the values recorded since the previous Progress.
type Progress struct {
	Phase     string `json:"phase"`
	Live      int64  `json:"live"` // connections bound now
	Attempted int64  `json:"attempted"`
	Sent      uint64 `json:"sent"`
	Acked     uint64 `json:"acked"`
	Delivered uint64 `json:"delivered"`
	Cycles    uint64 `json:"cycles"`
	Errors    uint64 `json:"errors"`
	Ack       Sparse `json:"ack"`
	Dlv       Sparse `json:"dlv"`
}

// DeviceStats summarises deliveries per connection that stayed bound to the end.
type DeviceStats struct {
	Devices int64  `json:"devices"`
	Min     uint64 `json:"min"`
	Max     uint64 `json:"max"`
	Sum     uint64 `json:"sum"`
}

// Result is a worker's final figures; the parent sums the workers' Results.
type Result struct {
	Attempted     int64             `json:"attempted"`
	Bound         int64             `json:"bound"`
	DialFailed    int64             `json:"dialFailed"`
	InitFailed    int64             `json:"initFailed"`
	Dropped       int64             `json:"dropped"`
	ClosedClean   int64             `json:"closedClean"`
	Live          int64             `json:"live"` // bound at the end of the hold/send phase
	Sent          uint64            `json:"sent"`
	Acked         uint64            `json:"acked"`
	Refused       uint64            `json:"refused"`
	Delivered     uint64            `json:"delivered"`
	DupAcks       uint64            `json:"dupAcks"`
	DupDeliveries uint64            `json:"dupDeliveries"`
	Foreign       uint64            `json:"foreign"`   // ACKs/deliveries of messages this run did not send
	Misrouted     uint64            `json:"misrouted"` // deliveries to a user neither receiver nor sender
	Keepalives    uint64            `json:"keepalives"`
	SendFailed    uint64            `json:"sendFailed"`
	Cycles        uint64            `json:"cycles"`
	Missed        uint64            `json:"missed"` // paced sends/cycles skipped: the generator fell >1s behind --rate
	SendSeconds   float64           `json:"sendSeconds"`
	AckHist       Sparse            `json:"ackHist"`
	DlvHist       Sparse            `json:"dlvHist"`
	ConnectHist   Sparse            `json:"connectHist"`
	InitHist      Sparse            `json:"initHist"`
	PickHist      Sparse            `json:"pickHist"`
	CloseCodes    map[string]uint64 `json:"closeCodes,omitempty"`
	Errors        map[string]uint64 `json:"errors,omitempty"`
	Audit         Audit             `json:"audit"`
	PerDevice     DeviceStats       `json:"perDevice"`
	GenRSSKB      int64             `json:"genRssKb"`
	GenCPUSeconds float64           `json:"genCpuSeconds"` // user + system CPU of the worker process
	TimedOut      bool              `json:"timedOut"`
	SetupFailed   bool              `json:"setupFailed,omitempty"` // groups could not be created; see Errors
	Storm         *StormResult      `json:"storm,omitempty"`
}

// result collects the worker's figures; called after the grace period, before closing.
func (w *worker) result(ctx context.Context) *Result {
	r := &Result{
		Attempted: w.attempted.Load(), Bound: w.bound.Load(), DialFailed: w.dialFailed.Load(),
		InitFailed: w.initFailed.Load(), Dropped: w.droppedN.Load(),
		Sent: w.sent.Load(), Acked: w.acked.Load(), Refused: w.refused.Load(), Delivered: w.delivered.Load(),
		DupAcks: w.dupAcks.Load(), DupDeliveries: w.dupDeliveries.Load(), Foreign: w.foreign.Load(),
		Misrouted: w.misrouted.Load(), Keepalives: w.keepalives.Load(), SendFailed: w.sendFailed.Load(),
		Cycles:  w.cycles.Load(),
		AckHist: w.ackH.Snapshot(), DlvHist: w.dlvH.Snapshot(), ConnectHist: w.connectH.Snapshot(), InitHist: w.initH.Snapshot(),
		PickHist:   w.pickH.Snapshot(),
		CloseCodes: map[string]uint64{}, Errors: map[string]uint64{},
		TimedOut: ctx.Err() != nil, SetupFailed: w.setupFailed,
	}
	if !w.sendStart.IsZero() && w.sendEnd.After(w.sendStart) {
		r.SendSeconds = w.sendEnd.Sub(w.sendStart).Seconds()
	}
	w.mu.Lock()
	for k, v := range w.closeCodes {
		r.CloseCodes[strconv.Itoa(k)] = v
	}
	for k, v := range w.errs {
		r.Errors[k] = v
	}
	w.mu.Unlock()
	if len(w.conns) > 0 {
		r.Audit = w.msgs.reconcile(w.droppedMask, w.connDropped)
		r.PerDevice.Min = ^uint64(0)
		for _, c := range w.conns {
			if c.state.Load() != stBound {
				continue
			}
			r.Live++
			n := c.delivered.Load()
			r.PerDevice.Devices++
			r.PerDevice.Sum += n
			r.PerDevice.Min = min(r.PerDevice.Min, n)
			r.PerDevice.Max = max(r.PerDevice.Max, n)
		}
		if r.PerDevice.Devices == 0 {
			r.PerDevice.Min = 0
		}
	}
	r.GenRSSKB = readRSSKB(os.Getpid())
	r.GenCPUSeconds = selfCPUSeconds()
	if w.storm != nil {
		r.Storm = w.storm.result()
	}
	return r
}

// merge adds o into r.
func (r *Result) merge(o *Result) {
	r.Attempted += o.Attempted
	r.Bound += o.Bound
	r.DialFailed += o.DialFailed
	r.InitFailed += o.InitFailed
	r.Dropped += o.Dropped
	r.ClosedClean += o.ClosedClean
	r.Live += o.Live
	r.Sent += o.Sent
	r.Acked += o.Acked
	r.Refused += o.Refused
	r.Delivered += o.Delivered
	r.DupAcks += o.DupAcks
	r.DupDeliveries += o.DupDeliveries
	r.Foreign += o.Foreign
	r.Misrouted += o.Misrouted
	r.Keepalives += o.Keepalives
	r.SendFailed += o.SendFailed
	r.Cycles += o.Cycles
	r.Missed += o.Missed
	r.SendSeconds = max(r.SendSeconds, o.SendSeconds)
	for _, p := range []struct {
		dst *Sparse
		src Sparse
	}{
		{&r.AckHist, o.AckHist}, {&r.DlvHist, o.DlvHist}, {&r.ConnectHist, o.ConnectHist}, {&r.InitHist, o.InitHist}, {&r.PickHist, o.PickHist},
	} {
		h := FromSparse(*p.dst)
		h.mergeSparse(p.src)
		*p.dst = h.Snapshot()
	}
	for _, m := range []struct {
		dst *map[string]uint64
		src map[string]uint64
	}{{&r.CloseCodes, o.CloseCodes}, {&r.Errors, o.Errors}} {
		if *m.dst == nil && len(m.src) > 0 {
			*m.dst = map[string]uint64{}
		}
		for k, v := range m.src {
			(*m.dst)[k] += v
		}
	}
	r.Audit.Add(o.Audit)
	if o.PerDevice.Devices > 0 {
		if r.PerDevice.Devices == 0 || o.PerDevice.Min < r.PerDevice.Min {
			r.PerDevice.Min = o.PerDevice.Min
		}
		r.PerDevice.Max = max(r.PerDevice.Max, o.PerDevice.Max)
		r.PerDevice.Devices += o.PerDevice.Devices
		r.PerDevice.Sum += o.PerDevice.Sum
	}
	r.GenRSSKB += o.GenRSSKB
	r.GenCPUSeconds += o.GenCPUSeconds
	r.TimedOut = r.TimedOut || o.TimedOut
	r.SetupFailed = r.SetupFailed || o.SetupFailed
	if o.Storm != nil {
		if r.Storm == nil {
			r.Storm = &StormResult{}
		}
		r.Storm.merge(o.Storm)
	}
}

// progressState is the previous snapshot for interval histograms.
type progressState struct {
	mu       sync.Mutex
	ack, dlv Sparse
}

// progress emits a Progress event.
func (w *worker) progress(bool) {
	if w.emit == nil {
		return
	}
	ps := &w.ps
	ps.mu.Lock()
	ack, dlv := w.ackH.Snapshot(), w.dlvH.Snapshot()
	p := &Progress{
		Phase: w.phase.Load().(string), Attempted: w.attempted.Load(),
		Sent: w.sent.Load(), Acked: w.acked.Load(), Delivered: w.delivered.Load(), Cycles: w.cycles.Load(),
		Ack: ack.Diff(ps.ack), Dlv: dlv.Diff(ps.dlv),
	}
	ps.ack, ps.dlv = ack, dlv
	ps.mu.Unlock()
	for _, c := range w.conns {
		if c.state.Load() == stBound {
			p.Live++
		}
	}
	w.mu.Lock()
	for _, v := range w.errs {
		p.Errors += v
	}
	w.mu.Unlock()
	w.emit(Event{Kind: "progress", Worker: w.cfg.Worker, Progress: p})
}

func (w *worker) startProgress() (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				w.progress(false)
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// readRSSKB returns VmRSS of pid in KiB from /proc/<pid>/status, or -1.
func readRSSKB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return v
				}
			}
		}
	}
	return -1
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux).
const clockTicks = 100

// readCPUTicks returns utime + stime of pid (all threads) in clock ticks, or -1.
func readCPUTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	// After the command: state is field 3 of stat(5), utime 14 and stime 15.
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + s
}

// selfCPUSeconds is the user + system CPU this process used so far; 0 when unknown.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
