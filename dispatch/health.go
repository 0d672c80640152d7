package dispatch

import "github.com/valyala/fasthttp"

// handleHealth answers GET /healthz: the fasthttp adapter of health.Checker, so the
// dispatcher answers exactly as the node and the saver do.
func (s *Server) handleHealth(ctx *fasthttp.RequestCtx) {
	status, body := s.health.Run(s.base)
	s.write(ctx, status, body)
}
