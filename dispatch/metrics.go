package dispatch

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// metricsHandler serves a net/http handler (the Prometheus registry's) on fasthttp;
// nil for none. A scrape every few seconds does not need more than the adaptor.
func metricsHandler(h http.Handler) fasthttp.RequestHandler {
	if h == nil {
		return nil
	}
	return fasthttpadaptor.NewFastHTTPHandler(h)
}

// pickCounts counts the picks answered per node id: a sync.Map of counters, so a
// pick pays a lookup and an atomic add, and a node seen once keeps its counter (a
// Prometheus counter must not go back).
type pickCounts struct{ m sync.Map } // node id → *atomic.Int64

func (p *pickCounts) add(id string) {
	v, ok := p.m.Load(id)
	if !ok {
		v, _ = p.m.LoadOrStore(id, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Picks returns the number of picks answered with each node id since the start.
func (s *Server) Picks() map[string]int64 {
	out := map[string]int64{}
	s.picks.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}
