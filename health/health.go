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

// Check is one dependency probed by GET /healthz.
type Check struct {
	// Name is the key of the check in the answer, e.g. "zookeeper"; unique, not empty.
	Name string
	// Check returns nil when the dependency is usable. It must return soon after ctx
	// is done: a run is bounded by the Checker's timeout and then abandoned.
	Check func(ctx context.Context) error
	// Degrades marks a dependency the role keeps serving without (ZooKeeper: the node
	// stays registered in the others' last view and the dispatcher picks from its own):
	// its failure is reported, and the answer is 200 with status "degraded" instead of
	// 503, so that a load balancer does not take a working cluster out.
	Degrades bool
}

// Checker runs a fixed list of checks. It is safe for concurrent use.
type Checker struct {
	checks  []Check
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
	return &Checker{checks: append([]Check(nil), checks...), timeout: timeout, log: log}, nil
}

// Run runs every check concurrently under ctx and the timeout and returns the
// HTTP status and the JSON body of the answer: 200 "ok"; 200 "degraded" when only
// checks that Degrade failed; 503 "fail" when another check failed.
func (c *Checker) Run(ctx context.Context) (status int, body []byte) {
	errs := c.run(ctx)
	status, word := http.StatusOK, "ok"
	for i, err := range errs {
		if err == nil {
			continue
		}
		c.log.Warn("health: check failed", "check", c.checks[i].Name, "err", err)
		switch {
		case !c.checks[i].Degrades:
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
		b = codec.AppendString(b, c.checks[i].Name)
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

// Results runs every check as Run does (concurrently, bounded by the timeout) and
// returns each outcome in order, without logging: the metrics' dependency gauges
// read the same checks as /healthz.
func (c *Checker) Results(ctx context.Context) []Result {
	errs := c.run(ctx)
	out := make([]Result, len(errs))
	for i, err := range errs {
		out[i] = Result{Name: c.checks[i].Name, Err: err}
	}
	return out
}

// ServeHTTP answers GET (and HEAD) /healthz on net/http with Run's status and body.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, body := c.Run(r.Context())
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// run returns the outcome of each check, in order. A check still running at the
// deadline is reported as timed out and left to finish on its own (its context is
// done, so a well-behaved check returns at once).
func (c *Checker) run(ctx context.Context) []error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	timedOut := fmt.Errorf("timed out after %v", c.timeout)
	results := make([]chan error, len(c.checks))
	for i, chk := range c.checks {
		results[i] = make(chan error, 1)
		go func() { results[i] <- runOne(ctx, chk, timedOut) }()
	}
	errs := make([]error, len(c.checks))
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
