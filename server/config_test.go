package server_test

import (
	"reflect"
	"strings"
	"testing"

	"imgate/server"
)

// TestConfigValidate: zero values are valid (they mean their defaults), Validate reports
// what no default can fix, and it never changes the Config it checks.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     server.Config
		wantErr string
	}{
		{name: "zero", cfg: server.Config{}},
		{name: "rate limit off", cfg: server.Config{RateLimit: 0, RateBurst: 0}},
		{name: "bad addr", cfg: server.Config{Addr: "nope"}, wantErr: "ws address"},
		{name: "bad path", cfg: server.Config{Path: "ws"}, wantErr: "must start with /"},
		{name: "worker out of range", cfg: server.Config{WorkerID: server.MaxWorkerID + 1}, wantErr: "out of range"},
		{name: "small message limit", cfg: server.Config{MaxMessageBytes: 10}, wantErr: "max message bytes"},
		{name: "outbound below message", cfg: server.Config{MaxMessageBytes: 64 << 10, MaxOutboundBytes: 1 << 10}, wantErr: "below the message limit"},
		{name: "negative rate limit", cfg: server.Config{RateLimit: -1}, wantErr: "rate limit"},
		{name: "negative burst", cfg: server.Config{RateBurst: -1}, wantErr: "rate burst"},
		{name: "origin with path", cfg: server.Config{AllowedOrigins: []string{"http://x/"}}, wantErr: "allowed origin"},
		{name: "origins", cfg: server.Config{AllowedOrigins: []string{"*", "https://a.example:8443"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.cfg
			err := tt.cfg.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
			if !reflect.DeepEqual(tt.cfg, before) {
				t.Fatalf("Validate changed the config: %+v, was %+v", tt.cfg, before)
			}
		})
	}
}

func TestConfigAdvertiseHost(t *testing.T) {
	tests := []struct {
		cfg  server.Config
		want string
	}{
		{server.Config{}, "127.0.0.1"},
		{server.Config{Addr: "0.0.0.0:8000"}, "127.0.0.1"},
		{server.Config{Addr: "[::]:8000"}, "127.0.0.1"},
		{server.Config{Addr: ":8000"}, "127.0.0.1"},
		{server.Config{Addr: "10.1.2.3:8000"}, "10.1.2.3"},
		{server.Config{Addr: "0.0.0.0:8000", AdvertiseIP: "192.0.2.7"}, "192.0.2.7"},
	}
	for _, tt := range tests {
		if got := tt.cfg.AdvertiseHost(); got != tt.want {
			t.Errorf("%+v.AdvertiseHost() = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}
