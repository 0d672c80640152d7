package dispatch

import (
	"context"

	"github.com/valyala/fasthttp"
)

// answerHealth answers GET /healthz (answer = health.Checker.Live) or GET /readyz
// (Checker.Ready): the fasthttp adapter of health.Checker, so the dispatcher answers
// exactly as the node and the saver do.
func (s *Server) answerHealth(ctx *fasthttp.RequestCtx, answer func(context.Context) (int, []byte)) {
	status, body := answer(s.base)
	s.write(ctx, status, body)
}
