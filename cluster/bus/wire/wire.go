package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"imgate/codec"
	"imgate/message"
)

// busWire is the JSON body of a bus message: one flat object per message.Record or
// message.Saved. msgId is a decimal string, chatTime RFC 3339 with nanoseconds in
// UTC, and extra (codec.ChatMsg.Extra, the unknown members of chatMsg) is carried
// as a raw JSON object written last: `"extra":{<Extra>}`. The decoder takes the
// bytes between its braces verbatim, so Extra survives byte for byte, whitespace
// included. senderConn is the sender's connection id as a decimal uint64 (its top
// 16 bits are the accepting node's worker id: 844424930131977 is connection 9 of
// worker 3); node is the accepting node's id, its advertised address "IP_port".
//
//	{"senderId":"alice","receiverId":"bob","msg":"hi","msgType":1,"msgId":"7392012345678901234",
//	 "clientMsgId":"a-17","chatTime":"2026-11-27T10:00:00.123Z","senderConn":"844424930131977",
//	 "node":"127.0.0.1_8875","receiverSeq":7,"senderSeq":12,"extra":{"w":640}}
type busWire struct {
	SenderID    string `json:"senderId"`
	ReceiverID  string `json:"receiverId"`
	Msg         string `json:"msg"`
	MsgType     int    `json:"msgType"`
	MsgID       string `json:"msgId"`
	ClientMsgID string `json:"clientMsgId,omitempty"`
	ChatTime    string `json:"chatTime,omitempty"`
	Seq         int64  `json:"seq,omitempty"`
	SenderConn  string `json:"senderConn,omitempty"`
	Node        string `json:"node,omitempty"`
	// Saved only.
	ReceiverSeq int64 `json:"receiverSeq,omitempty"`
	SenderSeq   int64 `json:"senderSeq,omitempty"`
	Duplicate   bool  `json:"duplicate,omitempty"`
	// Decoding only: Encode appends extra itself to keep it byte-exact.
	Extra json.RawMessage `json:"extra,omitempty"`
}

// EncodeRecord returns the bus body of r.
func EncodeRecord(r message.Record) ([]byte, error) {
	return encodeWire(busWireOf(r), r.Msg.Extra)
}

// DecodeRecord parses a body written by EncodeRecord.
func DecodeRecord(b []byte) (message.Record, error) {
	w, err := decodeWire(b)
	if err != nil {
		return message.Record{}, err
	}
	return w.record()
}

// EncodeSaved returns the bus body of s.
func EncodeSaved(s message.Saved) ([]byte, error) {
	w := busWireOf(s.Record)
	w.ReceiverSeq, w.SenderSeq, w.Duplicate = s.ReceiverSeq, s.SenderSeq, s.Duplicate
	return encodeWire(w, s.Msg.Extra)
}

// DecodeSaved parses a body written by EncodeSaved.
func DecodeSaved(b []byte) (message.Saved, error) {
	w, err := decodeWire(b)
	if err != nil {
		return message.Saved{}, err
	}
	r, err := w.record()
	if err != nil {
		return message.Saved{}, err
	}
	return message.Saved{Record: r, ReceiverSeq: w.ReceiverSeq, SenderSeq: w.SenderSeq, Duplicate: w.Duplicate}, nil
}

func busWireOf(r message.Record) busWire {
	w := busWire{
		SenderID:    r.Msg.SenderID,
		ReceiverID:  r.Msg.ReceiverID,
		Msg:         r.Msg.Msg,
		MsgType:     int(r.Msg.MsgType),
		MsgID:       strconv.FormatInt(r.Msg.MsgID, 10),
		ClientMsgID: r.Msg.ClientMsgID,
		Seq:         r.Msg.Seq,
		Node:        r.Node,
	}
	if r.SenderConn != 0 {
		w.SenderConn = strconv.FormatUint(r.SenderConn, 10)
	}
	if !r.Msg.ChatTime.IsZero() {
		w.ChatTime = r.Msg.ChatTime.UTC().Format(time.RFC3339Nano)
	}
	return w
}

func encodeWire(w busWire, extra []byte) ([]byte, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("wire: encode: %w", err)
	}
	if len(extra) == 0 {
		return b, nil
	}
	obj := make([]byte, 0, len(extra)+2)
	obj = append(append(append(obj, '{'), extra...), '}')
	if !json.Valid(obj) {
		return nil, errors.New("wire: encode: extra is not a list of JSON members")
	}
	out := make([]byte, 0, len(b)+len(obj)+10)
	out = append(out, b[:len(b)-1]...) // without the closing brace
	out = append(out, `,"extra":`...)
	out = append(out, obj...)
	return append(out, '}'), nil
}

func decodeWire(b []byte) (busWire, error) {
	var w busWire
	if err := json.Unmarshal(b, &w); err != nil {
		return w, fmt.Errorf("wire: decode: %w", err)
	}
	return w, nil
}

func (w busWire) record() (message.Record, error) {
	r := message.Record{
		Msg: codec.ChatMsg{
			SenderID:    w.SenderID,
			ReceiverID:  w.ReceiverID,
			Msg:         w.Msg,
			MsgType:     codec.MsgType(w.MsgType),
			ClientMsgID: w.ClientMsgID,
			Seq:         w.Seq,
		},
		Node: w.Node,
	}
	if w.SenderConn != "" {
		id, err := strconv.ParseUint(w.SenderConn, 10, 64)
		if err != nil {
			return r, fmt.Errorf("wire: decode senderConn: %w", err)
		}
		r.SenderConn = id
	}
	if w.MsgID != "" {
		id, err := strconv.ParseInt(w.MsgID, 10, 64)
		if err != nil {
			return r, fmt.Errorf("wire: decode msgId: %w", err)
		}
		r.Msg.MsgID = id
	}
	if w.ChatTime != "" {
		t, err := time.Parse(time.RFC3339Nano, w.ChatTime)
		if err != nil {
			return r, fmt.Errorf("wire: decode chatTime: %w", err)
		}
		r.Msg.ChatTime = t
	}
	if len(w.Extra) > 0 && !bytes.Equal(w.Extra, []byte("null")) {
		if len(w.Extra) < 2 || w.Extra[0] != '{' || w.Extra[len(w.Extra)-1] != '}' {
			return r, errors.New("wire: decode: extra is not an object")
		}
		if inner := w.Extra[1 : len(w.Extra)-1]; len(bytes.TrimSpace(inner)) > 0 {
			r.Msg.Extra = bytes.Clone(inner)
		}
	}
	return r, nil
}
