package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestStormBookkeeping: drops and rebinds of two workers add up, the storm spans the
// earliest drop to the latest rebind over both, and a drop never rebound is a failure.
func TestStormBookkeeping(t *testing.T) {
	base := time.Unix(1000, 0)
	w1, w2 := newStormState(), newStormState()
	c := []*conn{{}, {}, {}}
	w1.dropped(c[0])
	w1.dropped(c[1])
	w2.dropped(c[2])
	c[0].dropAt, c[1].dropAt, c[2].dropAt = base, base.Add(100*time.Millisecond), base.Add(50*time.Millisecond)
	w1.firstDrop.Store(base.UnixNano())
	w1.lastDrop.Store(base.Add(100 * time.Millisecond).UnixNano())
	w2.firstDrop.Store(base.Add(50 * time.Millisecond).UnixNano())
	w2.lastDrop.Store(base.Add(50 * time.Millisecond).UnixNano())
	c[0].rebinding, c[2].rebinding = true, true
	w1.rebound(c[0], base.Add(2*time.Second))
	w2.rebound(c[2], base.Add(3*time.Second))
	if c[0].rebinding || c[2].rebinding {
		t.Fatal("rebound connections still marked rebinding")
	}
	w1.attempts.Add(4)
	w2.attempts.Add(1)
	w2.replayed.Add(7)

	r := &Result{}
	r.merge(&Result{Storm: w1.result()})
	r.merge(&Result{Storm: w2.result()})
	rep := buildStormReport(r.Storm)
	if rep.Dropped != 3 || rep.Rebound != 2 || rep.Failed != 1 || rep.Attempts != 5 || rep.Replayed != 7 {
		t.Fatalf("report %+v", *rep)
	}
	if rep.Seconds != 3 || rep.DropSpread != 0.1 {
		t.Fatalf("storm %.3fs, drops spread %.3fs; want 3s and 0.1s", rep.Seconds, rep.DropSpread)
	}
	if rep.Rebind.Count != 2 || rep.Rebind.Max < 2.9e6 || rep.Rebind.Max > 3.1e6 {
		t.Fatalf("rebind %+v, want 2 values up to 2.95s", rep.Rebind)
	}
	var out bytes.Buffer
	rep.writeTable(&out)
	for _, want := range []string{"dropped 3, rebound 2, FAILED 1", "5 reconnect attempts, 7 messages replayed", "3.00s first drop → last rebind", "rebind"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestStormConfig: reconnects need a dispatcher; --url is allowed beside it only here.
func TestStormConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scenario = ScenarioStorm
	cfg.URLs = []string{"ws://127.0.0.1:1/ws"}
	if err := cfg.Validate(); err == nil {
		t.Fatal("storm without --dispatcher accepted")
	}
	cfg.Dispatcher = "http://127.0.0.1:2"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("storm with --url and --dispatcher: %v", err)
	}
	if cfg.Timeout < cfg.StormMax+cfg.Duration {
		t.Fatalf("derived timeout %v shorter than wait + storm", cfg.Timeout)
	}
	cfg.Scenario, cfg.Timeout = ScenarioIdle, 0
	if err := cfg.Validate(); err == nil {
		t.Fatal("idle with --url and --dispatcher accepted")
	}
	if got := appendInit(nil, "u", "", 41); string(got) != `{"chatMsg":{"senderId":"u","msgType":0},"cursor":41}` {
		t.Fatalf("init %s", got)
	}
}
