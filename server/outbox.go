package server

import "imgate/message"

// LiveOutbox delivers accepted messages at once, without a store (--store none): the
// ACK means only that the node accepted the message (at-most-once). Duplicates of a
// clientMsgId are not detected.
type LiveOutbox struct {
	srv *Server
}

// NewLiveOutbox returns an outbox that hands messages straight back to srv; set it with
// SetServer once the server exists.
func NewLiveOutbox() *LiveOutbox { return &LiveOutbox{} }

// SetServer connects the outbox to the node that delivers its messages.
func (o *LiveOutbox) SetServer(s *Server) { o.srv = s }

// Submit delivers r with no seq.
func (o *LiveOutbox) Submit(r message.Record) error {
	o.srv.Saved([]message.Saved{{Record: r}})
	return nil
}
