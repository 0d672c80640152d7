package codec

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

func TestAppendFrame(t *testing.T) {
	tests := []struct {
		name    string
		op      ws.OpCode
		length  int
		wantHdr []byte
	}{
		{
			name:    "empty text",
			op:      ws.OpText,
			length:  0,
			wantHdr: []byte{0x81, 0},
		},
		{
			name:    "125 bytes",
			op:      ws.OpText,
			length:  125,
			wantHdr: []byte{0x81, 125},
		},
		{
			name:    "126 bytes",
			op:      ws.OpText,
			length:  126,
			wantHdr: []byte{0x81, 126, 0, 126},
		},
		{
			name:    "65535 bytes",
			op:      ws.OpBinary,
			length:  65535,
			wantHdr: []byte{0x82, 126, 0xff, 0xff},
		},
		{
			name:    "65536 bytes",
			op:      ws.OpText,
			length:  65536,
			wantHdr: []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0},
		},
		{
			name:    "pong",
			op:      ws.OpPong,
			length:  3,
			wantHdr: []byte{0x8a, 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := []byte(strings.Repeat("x", tt.length))
			b := AppendFrame([]byte("pre"), tt.op, payload)
			if !bytes.HasPrefix(b, []byte("pre")) {
				t.Fatal("dst prefix lost")
			}
			b = b[3:]
			if !bytes.Equal(b[:len(tt.wantHdr)], tt.wantHdr) || !bytes.Equal(b[len(tt.wantHdr):], payload) {
				t.Fatalf(
					"header % x, want % x",
					b[:min(len(b), 10)], tt.wantHdr)
			}
			// gobwas/ws reads it back as a valid server frame.
			r := bytes.NewReader(b)
			h, err := ws.ReadHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, h.Length)
			if _, err := io.ReadFull(r, got); err != nil {
				t.Fatal(err)
			}
			if err := ws.CheckHeader(h, ws.StateClientSide); err != nil {
				t.Fatal(err)
			}
			if !h.Fin || h.OpCode != tt.op || !bytes.Equal(got, payload) {
				t.Fatalf("read back %+v", h)
			}
		})
	}
}

func TestAppendClose(t *testing.T) {
	tests := []struct {
		name   string
		code   ws.StatusCode
		reason string
		want   []byte
	}{
		{
			name: "no status",
			code: ws.StatusNoStatusRcvd,
			want: []byte{0x88, 0},
		},
		{
			name: "zero",
			code: 0,
			want: []byte{0x88, 0},
		},
		{
			name:   "normal with reason",
			code:   ws.StatusNormalClosure,
			reason: "bye",
			want:   []byte{0x88, 5, 0x03, 0xe8, 'b', 'y', 'e'},
		},
		{
			name: "4408",
			code: 4408,
			want: []byte{0x88, 2, 0x11, 0x38},
		},
		{
			name:   "long reason cut at a rune boundary",
			code:   1002,
			reason: strings.Repeat("a", 122) + "é",
			want:   append([]byte{0x88, 124, 0x03, 0xea}, strings.Repeat("a", 122)...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendClose(nil, tt.code, tt.reason)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf(
					"got % x\nwant % x",
					got, tt.want)
			}
		})
	}
}

func TestAppendFrameAllocs(t *testing.T) {
	dst := make([]byte, 0, 256)
	payload := []byte("hello")
	allocs := testing.AllocsPerRun(100, func() {
		dst = AppendFrame(dst[:0], ws.OpText, payload)
		dst = AppendClose(dst, 1000, "bye")
	})
	if allocs != 0 {
		t.Errorf(
			"allocs = %v, want 0",
			allocs)
	}
}
