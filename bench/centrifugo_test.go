package bench

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestCentToken(t *testing.T) {
	tok := centToken("s3cret", "bench-7")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok)
	}
	enc := base64.RawURLEncoding
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if got := enc.EncodeToString(mac.Sum(nil)); got != parts[2] {
		t.Fatalf("signature %s, want %s", parts[2], got)
	}
	var hdr, claims map[string]any
	for i, dst := range []*map[string]any{&hdr, &claims} {
		b, err := enc.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatalf("part %d: %v %s", i, err, b)
		}
	}
	if hdr["alg"] != "HS256" || claims["sub"] != "bench-7" || claims["exp"].(float64) < float64(time.Now().Unix()) {
		t.Fatalf("header %v claims %v", hdr, claims)
	}
}

func TestCentCommands(t *testing.T) {
	for _, b := range [][]byte{
		appendCentConnect(nil, "a.b.c"),
		appendCentSubscribe(nil, centChannel("bench-1")),
		appendCentPublish(nil, centChannel("bench-2"), "bench-1", "cw0", 7, 123, []byte("xx"), false),
	} {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	var pub struct {
		ID      int `json:"id"`
		Publish struct {
			Channel string `json:"channel"`
			Data    struct {
				ClientMsgID string `json:"clientMsgId"`
				T           int64  `json:"t"`
			} `json:"data"`
		} `json:"publish"`
	}
	b := appendCentPublish(nil, "personal:bench-1", "bench-1", "cw0", 7, 123, nil, true)
	if err := json.Unmarshal(b, &pub); err != nil {
		t.Fatal(err)
	}
	if pub.ID != centIDFirstPub+2*7+1 || pub.Publish.Channel != "personal:bench-1" || pub.Publish.Data.ClientMsgID != "cw0-7" || pub.Publish.Data.T != 123 {
		t.Fatalf("%+v", pub)
	}
}

func TestParseCent(t *testing.T) {
	var m centMsg
	cases := []struct {
		in   string
		want centMsg
	}{
		{`{}`, centMsg{kind: centPing}},
		{`{"id":1,"connect":{"client":"x","version":"6","ping":25,"pong":true}}`, centMsg{kind: centReply, id: 1}},
		{`{"id":2,"subscribe":{}}`, centMsg{kind: centReply, id: 2}},
		{`{"id":31,"error":{"code":103,"message":"permission denied"}}`, centMsg{kind: centReply, id: 31, errCode: []byte("103")}},
		{`{"push":{"channel":"personal:u","pub":{"data":{"senderId":"s","clientMsgId":"cw0-7","msg":"x","t":99},"offset":3}}}`,
			centMsg{kind: centPush, channel: []byte("personal:u"), clientMsgID: []byte("cw0-7"), t: 99}},
	}
	for _, c := range cases {
		if !parseCent([]byte(c.in), &m) {
			t.Fatalf("%s: parse failed", c.in)
		}
		if m.kind != c.want.kind || m.id != c.want.id || string(m.errCode) != string(c.want.errCode) ||
			string(m.channel) != string(c.want.channel) || string(m.clientMsgID) != string(c.want.clientMsgID) || m.t != c.want.t {
			t.Errorf("%s: got %+v want %+v", c.in, m, c.want)
		}
	}
	if parseCent([]byte(`{"id":`), &m) {
		t.Error("truncated input parsed")
	}
}
