package bus

import (
	"testing"
	"time"

	"imgate/cluster/rabbit"
)

func TestBusConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c := Config{}.withDefaults()
	if c.Exchange != "imgate.fanout" || c.SaveExchange != "imgate.msg" || c.SaveQueue != "imgate.msg.save" ||
		c.SaveKey != "imgate.msg.save" || c.ConfirmWindow != 1024 {
		t.Errorf("defaults = %+v", c)
	}
	if q := c.NodeQueue("10.0.0.5", 875); q != "imgate.node.10.0.0.5_875" {
		t.Errorf("NodeQueue = %q", q)
	}
	for name, bad := range map[string]Config{
		"url":      {Config: rabbit.Config{URL: "http://x"}},
		"window":   {Config: rabbit.Config{ConfirmWindow: -1}},
		"batch":    {NodeBatch: 2000},
		"backoff":  {Config: rabbit.Config{ReconnectMin: time.Second, ReconnectMax: time.Millisecond}},
		"exchange": {Exchange: "x", SaveExchange: "x"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, bad)
		}
	}
}
