package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite codec/testdata/*.golden.json from the current encoder")

// TestEnvelopeGolden decodes every testdata/*.json envelope, re-encodes it and
// compares with testdata/*.golden.json; the golden output must itself decode
// and re-encode to the same bytes.
func TestEnvelopeGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			e, err := DecodeEnvelope(src)
			if err != nil {
				t.Fatal(err)
			}
			got := AppendEnvelope(nil, e)
			if !json.Valid(got) {
				t.Fatalf(
					"encoded envelope is not JSON: %s",
					got)
			}
			golden := strings.TrimSuffix(in, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			want = bytes.TrimSuffix(want, []byte("\n"))
			if !bytes.Equal(got, want) {
				t.Fatalf(
					"got  %s\nwant %s",
					got, want)
			}
			e2, err := DecodeEnvelope(want)
			if err != nil {
				t.Fatal(err)
			}
			if again := AppendEnvelope(nil, e2); !bytes.Equal(again, want) {
				t.Fatalf(
					"golden does not round-trip:\n%s\n%s",
					again, want)
			}
			if !bytes.Equal(e.ChatMsg.Extra, e2.ChatMsg.Extra) {
				t.Fatalf(
					"Extra changed: %s -> %s",
					e.ChatMsg.Extra, e2.ChatMsg.Extra)
			}
		})
	}
	if n < 8 {
		t.Fatalf(
			"only %d golden inputs found",
			n)
	}
}

func TestDecodeEnvelopeFields(t *testing.T) {
	src := `{"chatMsg":{"senderId":"a\u00e9","receiverId":"b","msg":"m","msgType":1,"msgId":12,` +
		`"clientMsgId":"c","chatTime":"2026-11-27T10:00:00.123Z","seq":42,"x":1},` +
		`"serverNode":{"ip":"1.2.3.4","port":875,"onlineCounts":9,"other":1},"extend":"e","token":"t",` +
		`"cursor":-1,"error":{"code":"k","message":"m2"}}`
	e, err := DecodeEnvelope([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m := e.ChatMsg
	wantTime := time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC)
	if m.SenderID != "aé" || m.ReceiverID != "b" || m.Msg != "m" || m.MsgType != Words || m.MsgID != 12 ||
		m.ClientMsgID != "c" || !m.ChatTime.Equal(wantTime) || m.Seq != 42 || string(m.Extra) != `"x":1` {
		t.Errorf(
			"chatMsg %+v",
			m)
	}
	if *e.ServerNode != (NodeInfo{IP: "1.2.3.4", Port: 875, OnlineCounts: 9}) || e.Extend != "e" || e.Token != "t" ||
		e.Cursor == nil || *e.Cursor != -1 || *e.Error != (ErrorBody{Code: "k", Message: "m2"}) {
		t.Errorf(
			"envelope %+v",
			e)
	}
	out := string(AppendEnvelope(nil, e))
	if strings.Contains(out, "token") {
		t.Errorf(
			"token written: %s",
			out)
	}
}

func TestDecodeEnvelopeLenient(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(e *Envelope) bool
	}{
		{
			name:  "null members are absent",
			input: `{"chatMsg":{"msgType":1,"senderId":null,"msgId":null},"cursor":null,"serverNode":null,"error":null}`,
			check: func(e *Envelope) bool {
				return e.Cursor == nil && e.ServerNode == nil && e.Error == nil && e.ChatMsg.MsgID == 0
			},
		},
		{
			name:  "cursorAhead other than the literal true is ignored",
			input: `{"chatMsg":{"msgType":11},"cursorAhead":"true","extend":"x"}`,
			check: func(e *Envelope) bool { return !e.CursorAhead && e.Extend == "x" },
		},
		{
			name:  "cursorAhead false",
			input: `{"chatMsg":{"msgType":11},"cursorAhead":false}`,
			check: func(e *Envelope) bool { return !e.CursorAhead },
		},
		{
			name:  "cursor as a string",
			input: `{"chatMsg":{"msgType":0},"cursor":"17"}`,
			check: func(e *Envelope) bool { return e.Cursor != nil && *e.Cursor == 17 },
		},
		{
			name:  "client chatTime and seq of other types are ignored",
			input: `{"chatMsg":{"msgType":1,"chatTime":1732700000000,"seq":"x"}}`,
			check: func(e *Envelope) bool { return e.ChatMsg.ChatTime.IsZero() && e.ChatMsg.Seq == 0 },
		},
		{
			name:  "unparsable chatTime is ignored",
			input: `{"chatMsg":{"msgType":1,"chatTime":"yesterday"}}`,
			check: func(e *Envelope) bool { return e.ChatMsg.ChatTime.IsZero() },
		},
		{
			name:  "last duplicate wins",
			input: `{"chatMsg":{"msgType":1,"msg":"a","msg":"b"}}`,
			check: func(e *Envelope) bool { return e.ChatMsg.Msg == "b" },
		},
		{
			name:  "escaped known key",
			input: `{"chatMsg":{"msg\u0054ype":4}}`,
			check: func(e *Envelope) bool { return e.ChatMsg.MsgType == Video && e.ChatMsg.Extra == nil },
		},
		{
			name:  "escaped unknown key kept raw",
			input: `{"chatMsg":{"msgType":1,"k\"ey":"v"}}`,
			check: func(e *Envelope) bool { return string(e.ChatMsg.Extra) == `"k\"ey":"v"` },
		},
		{
			name:  "more unknown members than spans, order kept",
			input: `{"chatMsg":{"a":1,"b":2,"c":3,"msgType":1,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":[ 10 ]}}`,
			check: func(e *Envelope) bool {
				return string(e.ChatMsg.Extra) == `"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":[10]`
			},
		},
		{
			name:  "clientMsgId of 64 bytes",
			input: `{"chatMsg":{"msgType":1,"clientMsgId":"` + strings.Repeat("x", 64) + `"}}`,
			check: func(e *Envelope) bool { return len(e.ChatMsg.ClientMsgID) == 64 },
		},
		{
			name:  "token inside chatMsg is dropped",
			input: `{"chatMsg":{"msgType":1,"w":1,"token":"eyJ.x.y","TOKEN":"a","tok\u0065n":"b","h":2},"token":"top"}`,
			check: func(e *Envelope) bool { return string(e.ChatMsg.Extra) == `"w":1,"h":2` && e.Token == "top" },
		},
		{
			name:  "unknown members at their bounds",
			input: `{"chatMsg":{"msgType":1,"d":` + strings.Repeat("[", MaxExtraDepth) + strings.Repeat("]", MaxExtraDepth) + `,"n":-` + strings.Repeat("1", MaxExtraNumber-1) + `,"f":1.5e300,"s":"\u0001\ud800"}}`,
			check: func(e *Envelope) bool { return len(e.ChatMsg.Extra) > 0 },
		},
		{
			name:  "unknown members of exactly MaxExtraBytes",
			input: `{"chatMsg":{"msgType":1,"k":"` + strings.Repeat("x", MaxExtraBytes-6) + `"}}`,
			check: func(e *Envelope) bool { return len(e.ChatMsg.Extra) == MaxExtraBytes },
		},
		{
			name:  "lone surrogate becomes U+FFFD",
			input: `{"chatMsg":{"msgType":1,"msg":"\ud800x"}}`,
			check: func(e *Envelope) bool { return e.ChatMsg.Msg == "\uFFFDx" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEnvelope([]byte(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(e) {
				t.Fatalf(
					"unexpected result %+v %+v",
					e, e.ChatMsg)
			}
		})
	}
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		code  string
	}{
		{name: "empty", input: ``, code: CodeBadJSON},
		{name: "array", input: `[1]`, code: CodeBadJSON},
		{name: "string", input: `"x"`, code: CodeBadJSON},
		{name: "truncated", input: `{"chatMsg":{"msgType":1}`, code: CodeBadJSON},
		{name: "trailing garbage", input: `{"chatMsg":{"msgType":1}} x`, code: CodeBadJSON},
		{name: "two objects", input: `{"chatMsg":{"msgType":1}}{}`, code: CodeBadJSON},
		{name: "trailing comma", input: `{"chatMsg":{"msgType":1},}`, code: CodeBadJSON},
		{name: "single quotes", input: `{'chatMsg':{}}`, code: CodeBadJSON},
		{name: "bad escape", input: `{"chatMsg":{"msgType":1,"msg":"\x"}}`, code: CodeBadJSON},
		{name: "control char in string", input: "{\"chatMsg\":{\"msgType\":1,\"msg\":\"a\x01\"}}", code: CodeBadJSON},
		{name: "invalid utf-8", input: "{\"chatMsg\":{\"msgType\":1,\"msg\":\"\xff\"}}", code: CodeBadJSON},
		{name: "bad number", input: `{"chatMsg":{"msgType":01}}`, code: CodeBadJSON},
		{name: "bad literal", input: `{"chatMsg":{"msgType":1,"x":tru}}`, code: CodeBadJSON},
		{name: "syntax error after type error", input: `{"chatMsg":{"msgType":"1"},`, code: CodeBadJSON},
		{name: "chatMsg is a string", input: `{"chatMsg":"hi"}`, code: CodeBadJSON},
		{name: "chatMsg is null", input: `{"chatMsg":null}`, code: CodeBadJSON},
		{name: "chatMsg is an array", input: `{"chatMsg":[]}`, code: CodeBadJSON},
		{name: "too deep", input: `{"chatMsg":{"msgType":1,"x":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}}`, code: CodeBadJSON},
		{name: "no chatMsg", input: `{"token":"t"}`, code: CodeBadType},
		{name: "empty object", input: `{}`, code: CodeBadType},
		{name: "no msgType", input: `{"chatMsg":{"senderId":"a"}}`, code: CodeBadType},
		{name: "msgType null", input: `{"chatMsg":{"msgType":null}}`, code: CodeBadType},
		{name: "msgType string", input: `{"chatMsg":{"msgType":"1"}}`, code: CodeBadType},
		{name: "msgType float", input: `{"chatMsg":{"msgType":1.5}}`, code: CodeBadType},
		{name: "msgType exponent", input: `{"chatMsg":{"msgType":1e0}}`, code: CodeBadType},
		{name: "msgType overflow", input: `{"chatMsg":{"msgType":99999999999999999999}}`, code: CodeBadType},
		{name: "msgType bool", input: `{"chatMsg":{"msgType":true}}`, code: CodeBadType},
		{name: "bad type wins over bad request", input: `{"chatMsg":{"senderId":1,"msgType":"x"}}`, code: CodeBadType},
		{name: "senderId number", input: `{"chatMsg":{"msgType":1,"senderId":1}}`, code: CodeBadRequest},
		{name: "receiverId object", input: `{"chatMsg":{"msgType":1,"receiverId":{}}}`, code: CodeBadRequest},
		{name: "msg array", input: `{"chatMsg":{"msgType":1,"msg":["a"]}}`, code: CodeBadRequest},
		{name: "clientMsgId bool", input: `{"chatMsg":{"msgType":1,"clientMsgId":true}}`, code: CodeBadRequest},
		{name: "clientMsgId too long", input: `{"chatMsg":{"msgType":1,"clientMsgId":"` + strings.Repeat("x", 65) + `"}}`, code: CodeBadRequest},
		{name: "msgId float", input: `{"chatMsg":{"msgType":1,"msgId":1.5}}`, code: CodeBadRequest},
		{name: "msgId negative", input: `{"chatMsg":{"msgType":1,"msgId":-5}}`, code: CodeBadRequest},
		{name: "msgId overflow", input: `{"chatMsg":{"msgType":1,"msgId":"9223372036854775808"}}`, code: CodeBadRequest},
		{name: "msgId not digits", input: `{"chatMsg":{"msgType":1,"msgId":"12a"}}`, code: CodeBadRequest},
		{name: "msgId bool", input: `{"chatMsg":{"msgType":1,"msgId":false}}`, code: CodeBadRequest},
		{name: "cursor float", input: `{"chatMsg":{"msgType":0},"cursor":1.5}`, code: CodeBadRequest},
		{name: "cursor object", input: `{"chatMsg":{"msgType":0},"cursor":{}}`, code: CodeBadRequest},
		{name: "token number", input: `{"chatMsg":{"msgType":0},"token":5}`, code: CodeBadRequest},
		{name: "extend number", input: `{"chatMsg":{"msgType":0},"extend":5}`, code: CodeBadRequest},
		{name: "serverNode string", input: `{"chatMsg":{"msgType":0},"serverNode":"x"}`, code: CodeBadRequest},
		{name: "serverNode port string", input: `{"chatMsg":{"msgType":0},"serverNode":{"port":"875"}}`, code: CodeBadRequest},
		{name: "error code number", input: `{"chatMsg":{"msgType":12},"error":{"code":1}}`, code: CodeBadRequest},
		{name: "extra number of 5000 digits", input: `{"chatMsg":{"msgType":1,"n":` + strings.Repeat("9", 5000) + `}}`, code: CodeBadRequest},
		{name: "extra number over 32 bytes", input: `{"chatMsg":{"msgType":1,"n":[0.` + strings.Repeat("1", MaxExtraNumber-1) + `]}}`, code: CodeBadRequest},
		{name: "extra number out of float64", input: `{"chatMsg":{"msgType":1,"n":{"x":1e400}}}`, code: CodeBadRequest},
		{name: "extra nested 999 deep", input: `{"chatMsg":{"msgType":1,"x":` + strings.Repeat("[", 999) + strings.Repeat("]", 999) + `}}`, code: CodeBadRequest},
		{name: "extra nested 17 deep", input: `{"chatMsg":{"msgType":1,"x":` + strings.Repeat(`{"a":`, MaxExtraDepth+1) + `1` + strings.Repeat("}", MaxExtraDepth+1) + `}}`, code: CodeBadRequest},
		{name: "extra NUL escape in a value", input: `{"chatMsg":{"msgType":1,"x":["a\u0000b"]}}`, code: CodeBadRequest},
		{name: "extra NUL escape in a key", input: `{"chatMsg":{"msgType":1,"x\u0000":1}}`, code: CodeBadRequest},
		{name: "extra NUL escape in a nested key", input: `{"chatMsg":{"msgType":1,"x":{"\u0000":1}}}`, code: CodeBadRequest},
		{name: "extra over MaxExtraBytes", input: `{"chatMsg":{"msgType":1,"k":"` + strings.Repeat("x", MaxExtraBytes-5) + `"}}`, code: CodeBadRequest},
		{name: "extra over MaxExtraBytes in many members", input: `{"chatMsg":{"msgType":1` + strings.Repeat(`,"k":"`+strings.Repeat("x", 500)+`"`, 9) + `}}`, code: CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEnvelope([]byte(tt.input))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf(
					"err = %v (%+v), want *DecodeError",
					err, e)
			}
			if de.Code != tt.code {
				t.Fatalf(
					"code %q (%s), want %q",
					de.Code, de.Message, tt.code)
			}
		})
	}
}

func TestAppendEnvelope(t *testing.T) {
	cursor := int64(0)
	tests := []struct {
		name string
		env  Envelope
		want string
	}{
		{
			name: "msgType always written",
			env:  Envelope{ChatMsg: &ChatMsg{}},
			want: `{"chatMsg":{"msgType":0}}`,
		},
		{
			name: "cursor zero is written",
			env:  Envelope{ChatMsg: &ChatMsg{MsgType: Ack, Seq: 3}, Cursor: &cursor},
			want: `{"chatMsg":{"msgType":11,"seq":3},"cursor":0}`,
		},
		{
			name: "chatTime in UTC with milliseconds",
			env: Envelope{ChatMsg: &ChatMsg{MsgType: Ack, MsgID: 7392012345678901234,
				ChatTime: time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.FixedZone("x", 2*3600))}},
			want: `{"chatMsg":{"msgType":11,"msgId":"7392012345678901234","chatTime":"2026-11-27T10:00:00.123Z"}}`,
		},
		{
			name: "chatTime zero milliseconds",
			env:  Envelope{ChatMsg: &ChatMsg{MsgType: Words, ChatTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}},
			want: `{"chatMsg":{"msgType":1,"chatTime":"2026-01-01T00:00:00.000Z"}}`,
		},
		{
			name: "token never written and empty fields omitted",
			env:  Envelope{ChatMsg: &ChatMsg{MsgType: Keepalive}, Token: "secret", ServerNode: &NodeInfo{}, Error: &ErrorBody{Code: "x"}},
			want: `{"chatMsg":{"msgType":9},"serverNode":{},"error":{"code":"x"}}`,
		},
		{
			name: "no chatMsg",
			env:  Envelope{Extend: "c"},
			want: `{"extend":"c"}`,
		},
		{
			name: "escaping",
			env:  Envelope{ChatMsg: &ChatMsg{MsgType: Words, Msg: "q\"b\\s/\n\r\t\b\f\x00\x1f<>&\u2028é😀\xffz"}},
			want: `{"chatMsg":{"msg":"q\"b\\s/\n\r\t\b\f\u0000\u001f<>&` + "\u2028é😀" + `\ufffdz","msgType":1}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendEnvelope(nil, &tt.env))
			if got != tt.want {
				t.Fatalf(
					"got  %s\nwant %s",
					got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatal("not valid JSON")
			}
		})
	}
}

// TestAppendStringMatchesEncodingJSON checks the hand-written escaper against
// encoding/json: both must decode to the same string, invalid bytes as U+FFFD.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	inputs := []string{"", "plain", "\x00\x01\x7f", "é\xc3", "\xed\xa0\x80", "😀\xf0\x9f", "\u2028\u2029", `"\`, "<script>"}
	for c := 0; c < 256; c++ {
		inputs = append(inputs, "a"+string([]byte{byte(c)})+"b")
	}
	for _, s := range inputs {
		enc := AppendString(nil, s)
		if !utf8.Valid(enc) {
			t.Fatalf(
				"%q: output is not UTF-8: %q",
				s, enc)
		}
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf(
				"%q: %s: %v",
				s, enc, err)
		}
		ref, _ := json.Marshal(s)
		var want string
		_ = json.Unmarshal(ref, &want)
		if got != want {
			t.Errorf(
				"%q: decodes to %q, encoding/json gives %q",
				s, got, want)
		}
	}
}

func TestEnvelopeAllocs(t *testing.T) {
	src := []byte(`{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"hello","msgType":1,"clientMsgId":"a-17"}}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeEnvelope(src); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 3 {
		t.Errorf(
			"DecodeEnvelope allocates %v times, want at most 3 (envelope, chatMsg, strings)",
			allocs)
	}
	e, _ := DecodeEnvelope(src)
	dst := make([]byte, 0, 512)
	allocs = testing.AllocsPerRun(100, func() {
		dst = AppendEnvelope(dst[:0], e)
	})
	if allocs != 0 {
		t.Errorf(
			"AppendEnvelope allocates %v times, want 0",
			allocs)
	}
}

func TestGroupIDIsAKnownMember(t *testing.T) {
	e, err := DecodeEnvelope([]byte(`{"chatMsg":{"senderId":"alice","groupId":"te\"am","msgType":1,"msg":"hi","w":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.ChatMsg.GroupID != `te"am` || string(e.ChatMsg.Extra) != `"w":1` {
		t.Fatalf("groupId %q, extra %q: want groupId decoded, not kept as an unknown member", e.ChatMsg.GroupID, e.ChatMsg.Extra)
	}
	got := string(AppendChatMsg(nil, e.ChatMsg))
	if want := `{"senderId":"alice","groupId":"te\"am","msg":"hi","msgType":1,"w":1}`; got != want {
		t.Fatalf("encoded %s, want %s", got, want)
	}
	if _, err := DecodeEnvelope([]byte(`{"chatMsg":{"groupId":7,"msgType":1}}`)); err == nil {
		t.Fatal("a numeric groupId decoded")
	}
}
