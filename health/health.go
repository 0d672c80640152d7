package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"imgate/codec"
)

// DefaultTimeout bounds each check when New is given a zero timeout.
const DefaultTimeout = 2 * time.Second

// Check is one thing probed by GET /readyz (a dependency, or with Live the process's
// own serving, which GET /healthz probes too).
type Check struct {
	// Name is the key of the check in the answer, e.g. "zookeeper"; unique, not empty.
	Name string
	// Check returns nil when the dependency is usable. It must return soon after ctx
	// is done: a run is bounded by the Checker's timeout and then abandoned.
	Check func(ctx context.Context) error
	// Degrades marks a dependency the role keeps serving without (ZooKeeper: the node
	// stays registered in the others' last view and the dispatcher picks from its own):
	// its failure is reported, and /readyz answers 200 with status "degraded" instead
	// of 503, so that a readiness gate does not take a working cluster out.
	Degrades bool
	// Live marks a check of the process's own serving (a node that is not draining),
	// as opposed to a dependency: GET /healthz (liveness, load balancers) runs only
	// the Live checks, GET /readyz runs every check.
	Live bool
}

// Checker runs a fixed list of checks. It is safe for concurrent use.
type Checker struct {
	checks  []Check
	live    []Check // the Live ones of checks
	timeout time.Duration
	log     *slog.Logger
}

// New returns a Checker over checks (copied), each run bounded by timeout (zero
// means DefaultTimeout). Every check needs a Name and a Check, and names are
// unique. Failed checks are logged at warn level on log; nil discards.
func New(checks []Check, timeout time.Duration, log *slog.Logger) (*Checker, error) {
	if timeout < 0 {
		return nil, fmt.Errorf("health: negative timeout %v", timeout)
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	names := make(map[string]bool, len(checks))
	for i, c := range checks {
		if c.Name == "" || c.Check == nil {
			return nil, fmt.Errorf("health: check %d needs a Name and a Check", i)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("health: duplicate check %q", c.Name)
		}
		names[c.Name] = true
	}
	c := &Checker{checks: append([]Check(nil), checks...), timeout: timeout, log: log}
	for _, chk := range c.checks {
		if chk.Live {
			c.live = append(c.live, chk)
		}
	}
	return c, nil
}

// Live runs only the Live checks and returns the answer of GET /healthz: is the
// process alive and serving its clients. A dependency's outage never fails it, so a
// load balancer or a liveness probe that trusts it does not take a working node out
// (nor restart it) while, say, ZooKeeper or the broker is away.
func (c *Checker) Live(ctx context.Context) (status int, body []byte) {
	return c.render(c.live, c.run(ctx, c.live))
}

// Ready runs every check concurrently under ctx and the timeout and returns the
// answer of GET /readyz, the state of every dependency: 200 "ok"; 200 "degraded" when
// only checks that Degrade failed; 503 "fail" when another check failed.
func (c *Checker) Ready(ctx context.Context) (status int, body []byte) {
	return c.render(c.checks, c.run(ctx, c.checks))
}

// render logs the failed checks and builds the status and body of an answer.
func (c *Checker) render(checks []Check, errs []error) (status int, body []byte) {
	status, word := http.StatusOK, "ok"
	for i, err := range errs {
		if err == nil {
			continue
		}
		c.log.Warn("health: check failed", "check", checks[i].Name, "err", err)
		switch {
		case !checks[i].Degrades:
			status, word = http.StatusServiceUnavailable, "fail"
		case word == "ok":
			word = "degraded"
		}
	}
	b := make([]byte, 0, 64+48*len(errs))
	b = append(b, `{"status":`...)
	b = codec.AppendString(b, word)
	b = append(b, `,"checks":{`...)
	for i, err := range errs {
		if i > 0 {
			b = append(b, ',')
		}
		b = codec.AppendString(b, checks[i].Name)
		b = append(b, ':')
		if err == nil {
			b = append(b, `"ok"`...)
		} else {
			b = codec.AppendString(b, err.Error())
		}
	}
	return status, append(b, "}}"...)
}

// Result is the outcome of one check: nil Err when the dependency is usable.
type Result struct {
	Name string
	Err  error
}

// Results runs every check as Ready does (concurrently, bounded by the timeout) and
// returns each outcome in order, without logging: the metrics' dependency gauges
// read the same checks as /readyz.
func (c *Checker) Results(ctx context.Context) []Result {
	errs := c.run(ctx, c.checks)
	out := make([]Result, len(errs))
	for i, err := range errs {
		out[i] = Result{Name: c.checks[i].Name, Err: err}
	}
	return out
}

// LiveHandler answers GET (and HEAD) /healthz on net/http with Live's status and body.
func (c *Checker) LiveHandler() http.Handler { return handler(c.Live) }

// ReadyHandler answers GET (and HEAD) /readyz on net/http with Ready's status and body.
func (c *Checker) ReadyHandler() http.Handler { return handler(c.Ready) }

// handler adapts Live or Ready to net/http.
func handler(answer func(context.Context) (int, []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body := answer(r.Context())
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

// run returns the outcome of each check, in order. A check still running at the
// deadline is reported as timed out and left to finish on its own (its context is
// done, so a well-behaved check returns at once).
func (c *Checker) run(ctx context.Context, checks []Check) []error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	timedOut := fmt.Errorf("timed out after %v", c.timeout)
	results := make([]chan error, len(checks))
	for i, chk := range checks {
		results[i] = make(chan error, 1)
		go func() { results[i] <- runOne(ctx, chk, timedOut) }()
	}
	errs := make([]error, len(checks))
	for i, ch := range results {
		select {
		case errs[i] = <-ch:
		case <-ctx.Done():
			select {
			case errs[i] = <-ch:
			default:
				errs[i] = timedOut
				if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					errs[i] = ctx.Err()
				}
			}
		}
	}
	return errs
}

// runOne runs chk, turning a panic into an error and a result that came after the
// deadline into timedOut.
func runOne(ctx context.Context, chk Check, timedOut error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("health: check %s panicked: %v", chk.Name, r)
		}
	}()
	err = chk.Check(ctx)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && (err == nil || errors.Is(err, context.DeadlineExceeded)) {
		err = timedOut
	}
	return err
}
