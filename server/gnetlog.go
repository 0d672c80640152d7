package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// gnetLogger adapts slog to gnet's logging interface. gnet's warnings and errors come
// from its loops and its acceptor, where one cause (out of file descriptors: accept
// fails with EMFILE) repeats for every connection: they pass at most once a second
// (gnetLogEvery), and failed accepts are counted in Stats().AcceptErrors.
type gnetLogger struct {
	l   *slog.Logger
	srv *Server // nil: nothing is counted or rate-limited (tests)
}

func (g gnetLogger) logf(level slog.Level, format string, args ...any) {
	if g.srv != nil && level >= slog.LevelWarn {
		if strings.HasPrefix(format, "Accept() failed") {
			g.srv.stats.acceptErrors.Add(1)
		}
		if !g.srv.gnetWarn.Allow() {
			return
		}
	}
	if g.l.Enabled(context.Background(), level) {
		g.l.Log(context.Background(), level, fmt.Sprintf(format, args...), "component", "gnet")
	}
}

// gnetLogEvery is the least time between two gnet warnings or errors in the log.
const gnetLogEvery = time.Second

func (g gnetLogger) Debugf(format string, args ...any) { g.logf(slog.LevelDebug, format, args...) }
func (g gnetLogger) Infof(format string, args ...any)  { g.logf(slog.LevelDebug, format, args...) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.logf(slog.LevelWarn, format, args...) }
func (g gnetLogger) Errorf(format string, args ...any) { g.logf(slog.LevelError, format, args...) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.logf(slog.LevelError, format, args...) }
