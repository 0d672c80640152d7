package bench

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// Client protocols of the generator (--protocol).
const (
	ProtocolImgate     = "imgate"     // PROTOCOL.md: CONNECT_INIT, WORDS, ACK
	ProtocolCentrifugo = "centrifugo" // Centrifugo v6 JSON client protocol
)

// Centrifugo mapping (--protocol centrifugo). Centrifugo's JSON protocol over WebSocket
// (ws://host:port/connection/websocket) sends commands {"id":N,"connect"|"subscribe"|"publish":
// {...}}; replies carry the same id and either the method's result or "error"; pushes carry no
// id: {"push":{"channel":C,"pub":{"data":D}}}. Several commands or replies may share one frame,
// one JSON object per line. The server pings with an empty object {} and expects {} back.
//
//   - bind: connect with an HS256 JWT whose sub is the user (signed with --centrifugo-secret),
//     then subscribe to the user's personal channel "personal:<user>". A connection is bound
//     when the subscribe reply arrives; the init latency is connect written → subscribe reply.
//   - a p2p message from S to R is a publish to "personal:R" whose data is
//     {"senderId","clientMsgId","msg","t"}; the publish reply is the ACK; each push of that
//     publication is a delivery (latency from "t").
//   - sender's other devices (devices scenario, --devices > 1): the same data is also published
//     to "personal:S" in the same frame (a second command whose reply is not counted). Centrifugo
//     echoes it to the sending connection too; that echo is dropped by the generator, as a real
//     client drops its own message, and not counted as a delivery.
//
// Command ids: 1 connect, 2 subscribe, 16+2i the publish of message i to the receiver,
// 17+2i its copy to the sender's channel.
const (
	centIDConnect   = 1
	centIDSubscribe = 2
	centIDFirstPub  = 16
)

// centToken returns an HS256 JWT for user, valid for a day.
func centToken(secret, user string) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := `{"sub":` + strconv.Quote(user) + `,"exp":` + strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10) + `}`
	signing := header + "." + enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// centChannel returns the personal channel of user.
func centChannel(user string) string { return "personal:" + user }

func appendCentConnect(dst []byte, token string) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, centIDConnect, 10)
	dst = append(dst, `,"connect":{"token":`...)
	dst = strconv.AppendQuote(dst, token)
	return append(dst, `}}`...)
}

func appendCentSubscribe(dst []byte, channel string) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, centIDSubscribe, 10)
	dst = append(dst, `,"subscribe":{"channel":`...)
	dst = strconv.AppendQuote(dst, channel)
	return append(dst, `}}`...)
}

// appendCentPublish appends the publish of message idx to channel (copy = the sender's copy).
func appendCentPublish(dst []byte, channel, sender, tag string, idx uint64, sendNanos int64, body []byte, copyToSender bool) []byte {
	id := uint64(centIDFirstPub) + 2*idx
	if copyToSender {
		id++
	}
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"publish":{"channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","data":{"senderId":"`...)
	dst = append(dst, sender...)
	dst = append(dst, `","clientMsgId":"`...)
	dst = append(dst, tag...)
	dst = append(dst, '-')
	dst = strconv.AppendUint(dst, idx, 10)
	dst = append(dst, `","msg":"`...)
	dst = append(dst, body...)
	dst = append(dst, `","t":`...)
	dst = strconv.AppendInt(dst, sendNanos, 10)
	return append(dst, `}}}`...)
}

// Kinds of Centrifugo messages.
const (
	centOther = iota
	centPing  // {} from the server
	centReply // a reply to a command (id set)
	centPush  // a publication push
)

// centMsg is what the generator needs from one Centrifugo message. Slices alias the frame.
type centMsg struct {
	kind        int
	id          int64
	errCode     []byte // set when the reply is an error
	channel     []byte
	clientMsgID []byte
	t           int64
}

// parseCent parses one JSON object of the Centrifugo protocol.
func parseCent(b []byte, m *centMsg) bool {
	*m = centMsg{}
	p := jscan{b: b}
	keys := 0
	ok := p.object(func(key []byte) bool {
		keys++
		switch string(key) {
		case "id":
			v, ok := p.int()
			m.id = v
			if m.kind == centOther {
				m.kind = centReply
			}
			return ok
		case "error":
			return p.object(func(key []byte) bool {
				if string(key) == "code" {
					m.errCode = p.scalar()
					return m.errCode != nil
				}
				return p.skip()
			})
		case "push":
			return p.object(func(key []byte) bool {
				switch string(key) {
				case "channel":
					m.channel = p.scalar()
					return m.channel != nil
				case "pub":
					m.kind = centPush
					return p.object(func(key []byte) bool {
						if string(key) != "data" {
							return p.skip()
						}
						return p.object(func(key []byte) bool {
							switch string(key) {
							case "clientMsgId":
								m.clientMsgID = p.scalar()
								return m.clientMsgID != nil
							case "t":
								v, ok := p.int()
								m.t = v
								return ok
							}
							return p.skip()
						})
					})
				}
				return p.skip()
			})
		}
		return p.skip()
	})
	if ok && keys == 0 {
		m.kind = centPing
	}
	return ok
}

// handleCent handles one text message of the Centrifugo protocol (one or more JSON objects,
// one per line); false ends the connection.
func (c *conn) handleCent(p []byte) bool {
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !c.handleCentLine(line) {
			return false
		}
	}
	return true
}

func (c *conn) handleCentLine(b []byte) bool {
	w := c.w
	now := time.Now()
	m := &c.cm
	if !parseCent(b, m) {
		w.errorKind("bad json from server")
		return true
	}
	switch m.kind {
	case centPing:
		if err := c.writeText(func(b []byte) []byte { return append(b, "{}"...) }); err != nil {
			w.errorKind("write: pong")
		}
	case centPush:
		r := w.lookup(m.clientMsgID)
		if r != nil && r.sender == c.idx {
			return true // Centrifugo's echo of our own publication to the sender's channel
		}
		c.onDelivery(r, m.t, now)
	case centReply:
		switch {
		case m.id == centIDConnect || m.id == centIDSubscribe:
			if m.errCode != nil {
				w.errorKind("server error: " + string(m.errCode))
				if c.state.Load() == stNew {
					w.initFailed.Add(1)
					return false
				}
				return true
			}
			if m.id == centIDConnect {
				ch := centChannel(c.userID())
				if w.cfg.Scenario == ScenarioGroups {
					ch = centGroupChannel(w.groupID(w.groupOf(c.user)))
				}
				if err := c.writeText(func(b []byte) []byte { return appendCentSubscribe(b, ch) }); err != nil {
					w.errorKind("write: subscribe")
					w.initFailed.Add(1)
					return false
				}
				return true
			}
			c.onBound(now, "")
		case m.id >= centIDFirstPub:
			n := m.id - centIDFirstPub
			if n%2 == 1 { // the copy to the sender's channel
				if m.errCode != nil {
					w.errorKind("server error (sender copy): " + string(m.errCode))
				}
				return true
			}
			r := w.msgs.at(uint64(n / 2))
			if r == nil || r.state.Load() == msgReserved {
				w.foreign.Add(1)
				return true
			}
			if m.errCode != nil {
				w.errorKind("server error: " + string(m.errCode))
				c.onRefused(r)
				return true
			}
			c.onAck(r, nil, now)
		default:
			w.foreign.Add(1)
		}
	}
	return true
}
