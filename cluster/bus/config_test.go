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
	// Committed batches waiting for their fan-out confirms never hold up the next commit
	// or fan-out: the pipeline holds as many batches as the prefetch can (8 made a slow
	// confirm throttle the saver to 8 transactions per confirm round trip).
	if c.SavePipeline != c.SavePrefetch || c.SaveBatch != c.SavePrefetch || c.SaveBatchBytes != 512<<10 {
		t.Errorf("saver defaults: SavePipeline %d, SaveBatch %d, SaveBatchBytes %d; want %d, %d, %d",
			c.SavePipeline, c.SaveBatch, c.SaveBatchBytes, c.SavePrefetch, c.SavePrefetch, 512<<10)
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
