/*
Package codec is imgate's wire codec: the RFC 6455 server side (upgrade
request parsing, a resumable frame parser, a frame writer) and the JSON
envelope of PROTOCOL §3. It does no I/O: every function works on bytes the
caller has buffered, so it fits an event loop (gnet's OnTraffic) where a
request or a frame may arrive split over many reads, or many frames in one.
On the hot path nothing allocates except what the caller keeps (decoded
envelope strings).

# Handshake

Feed the bytes received so far; wait while the head is incomplete, answer
errors with a plain HTTP response, keep the bytes after the head for frames:

	u, n, err := codec.ParseUpgrade(buf)
	switch e := err.(type) {
	case nil:
	case *codec.HTTPError:
		out = codec.AppendHTTPError(out, e.Status, e.Reason) // then close
		return
	default: // codec.ErrIncomplete: wait for more bytes
		return
	}
	if u.Path != "/ws" {
		out = codec.AppendHTTPError(out, 404, "no such path") // then close
		return
	}
	out = codec.AppendUpgradeResponse(out, u.Key)
	buf = buf[n:] // frames sent with the request, if any

# Frames

One Parser per connection. Call Next until it needs more bytes, discarding
what it consumed each time; it consumes at most one frame per call:

	for {
		f, n, err := p.Next(buf)
		if err != nil {
			ce := err.(*codec.CloseError) // 1002, 1003, 1007 or 1009
			out = codec.AppendClose(out, ce.Code, ce.Reason) // then close
			return
		}
		if n == 0 {
			return // wait for more bytes, keep buf as it is
		}
		switch f.Kind {
		case codec.KindText:
			handle(f.Payload) // borrowed: copy what outlives buf or the next Next
		case codec.KindBinary:
			out = codec.AppendClose(out, ws.StatusUnsupportedData, "")
			return // then close
		case codec.KindPing:
			out = codec.AppendFrame(out, ws.OpPong, f.Payload)
		case codec.KindPong, codec.KindNone:
			// a pong, or a fragment of a message still incomplete
		case codec.KindClose:
			out = codec.AppendClose(out, f.Code, "") // 1005 → empty body
			return // then close
		}
		buf = buf[n:]
	}

Protocol violations are *CloseError values carrying the close code to send.
A message over Parser.MaxMessage is refused with 1009 from its frame header,
before its payload is buffered; invalid UTF-8 is refused with 1007 as soon as
a byte that can never become valid arrives, even mid-frame.

# Envelopes

	e, err := codec.DecodeEnvelope(f.Payload)
	if err != nil {
		de := err.(*codec.DecodeError) // Code: bad_json, bad_type or bad_request
		reply := &codec.Envelope{
			ChatMsg: &codec.ChatMsg{MsgType: codec.Error},
			Error:   &codec.ErrorBody{Code: de.Code, Message: de.Message},
		}
		out = codec.AppendFrame(out, ws.OpText, codec.AppendEnvelope(nil, reply))
	}

AppendEnvelope writes compact JSON with msgId as a decimal string and
chatTime as RFC 3339 UTC with milliseconds; unknown chatMsg members read by
DecodeEnvelope (ChatMsg.Extra) are written back unchanged, and token never is.
DecodeEnvelope drops a token member inside chatMsg (it never reaches Extra) and
bounds Extra (MaxExtraBytes, MaxExtraDepth, MaxExtraNumber, no \u0000 escapes).
*/
package codec
