package codec

import "testing"

func TestSmoke(t *testing.T) {
	req := "GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	u, n, err := ParseUpgrade([]byte(req))
	if err != nil || n != len(req) || u.Path != "/ws" || u.Query != "x=1" {
		t.Fatalf("%+v %d %v", u, n, err)
	}
	resp := string(AppendUpgradeResponse(nil, u.Key))
	if want := "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; !contains(resp, want) {
		t.Fatal(resp)
	}
	e, err := DecodeEnvelope([]byte(`{"chatMsg":{"senderId":"a\u00e9","msgType":1,"msgId":"12","w":{"a": [1, 2]},"x":"y"},"cursor":5}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", AppendEnvelope(nil, e))
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
