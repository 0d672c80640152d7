package dispatch

import (
	"context"
	"fmt"

	"imgate/codec"

	"github.com/valyala/fasthttp"
)

// checkResult is the outcome of one health check: nil error means ok.
type checkResult struct {
	name string
	err  error
}

// handleHealth runs every check concurrently, each bounded by Config.CheckTimeout, and
// answers 200 {"status":"ok","checks":{name:"ok",…}} when all pass, else 503 with
// "status":"fail" and the failing checks' error text in place of "ok". Checks appear in
// the order of Deps.Health.
func (s *Server) handleHealth(ctx *fasthttp.RequestCtx) {
	results := s.runChecks()
	status, word := fasthttp.StatusOK, "ok"
	for _, r := range results {
		if r.err != nil {
			status, word = fasthttp.StatusServiceUnavailable, "fail"
			s.log.Warn("dispatch: health check failed", "check", r.name, "err", r.err)
		}
	}
	b := make([]byte, 0, 64+48*len(results))
	b = append(b, `{"status":`...)
	b = codec.AppendString(b, word)
	b = append(b, `,"checks":{`...)
	for i, r := range results {
		b = appendKey(b, r.name, i == 0)
		if r.err == nil {
			b = append(b, `"ok"`...)
		} else {
			b = codec.AppendString(b, r.err.Error())
		}
	}
	b = append(b, "}}"...)
	s.write(ctx, status, b)
}

// runChecks runs the checks concurrently and returns their results in order. A check
// that outlives its timeout is reported as timed out and left to finish on its own
// (its context is done, so a well-behaved check returns at once).
func (s *Server) runChecks() []checkResult {
	results := make([]checkResult, len(s.checks))
	done := make(chan int, len(s.checks))
	for i, c := range s.checks {
		results[i].name = c.Name
		go func() {
			ctx, cancel := context.WithTimeout(s.base, s.cfg.CheckTimeout)
			defer cancel()
			ch := make(chan error, 1)
			go func() {
				defer func() {
					if r := recover(); r != nil {
						ch <- fmt.Errorf("dispatch: check %s panicked: %v", c.Name, r)
					}
				}()
				ch <- c.Check(ctx)
			}()
			select {
			case err := <-ch:
				if err == nil && ctx.Err() != nil {
					err = ctx.Err()
				}
				results[i].err = err
			case <-ctx.Done():
				results[i].err = fmt.Errorf("timed out after %v", s.cfg.CheckTimeout)
			}
			done <- i
		}()
	}
	for range s.checks {
		<-done
	}
	return results
}
