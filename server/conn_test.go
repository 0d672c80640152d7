package server

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps a connection's struct in the 128-byte size class: memory per idle
// connection is a headline figure, and a field added carelessly moves it to 144.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 128 {
		t.Fatalf("conn is %d bytes, want at most 128", n)
	}
}
