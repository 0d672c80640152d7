package server

import (
	"context"

	"github.com/panjf2000/gnet/v2"
)

// Session is one connection of a user on this node, as the admin routes list it.
type Session struct {
	// ConnID is the connection id (the extend of its CONNECT_INIT ACK).
	ConnID string
	// RemoteAddr is the peer address the node sees (a proxy's, behind one).
	RemoteAddr string
}

// Sessions returns the connections bound to userID on this node. Any goroutine may call it.
func (s *Server) Sessions(userID string) []Session {
	devs := s.sessions.devices(userID)
	out := make([]Session, 0, len(devs))
	for _, c := range devs {
		ses := Session{ConnID: c.idString()}
		if a := c.gc.RemoteAddr(); a != nil {
			ses.RemoteAddr = a.String()
		}
		out = append(out, ses)
	}
	return out
}

// Kick closes every connection of userID on this node with 1008 "kicked" (an operator's
// decision: RFC 6455 policy violation) and returns how many it closes. The closes run on
// the connections' event loops; Kick does not wait for them.
func (s *Server) Kick(userID string) int {
	devs := s.sessions.devices(userID)
	for _, c := range devs {
		_ = c.loop.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			c.loop.closeConn(c, closeKicked)
			return nil
		}))
	}
	if len(devs) > 0 {
		s.log.Info("kicked", "user", userID, "devices", len(devs))
	}
	return len(devs)
}
