package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The groups scenario. Groups groups of GroupSize members: member j of group g is user
// g×GroupSize+j, so a group's connections are contiguous in worker.conns (user-major) and a
// whole group lives in one worker. The worker creates its groups with the server API
// (PUT /api/v1/groups/{groupId}, PROTOCOL §8) before it connects; then a random bound member
// sends a content message with groupId and no receiverId. Every bound device of every member
// except the sending connection must receive it exactly once. With --protocol centrifugo each
// member subscribes to the channel "group:<groupId>" instead of its personal channel and a
// message is a publish to that channel (no API call: Centrifugo channels need none).

// maxGroupDevices bounds GroupSize × Devices: the audit keeps one bit per member device.
const maxGroupDevices = 1 << 20

func (c *Config) validateGroups() error {
	if c.GroupSize < 2 {
		return errors.New("bench: --group-size must be at least 2")
	}
	if c.Groups < 1 {
		return errors.New("bench: --groups must be at least 1")
	}
	if c.GroupSize*c.Devices > maxGroupDevices {
		return fmt.Errorf("bench: --group-size × --devices above %d", maxGroupDevices)
	}
	if c.Users != c.Groups*c.GroupSize {
		return fmt.Errorf("bench: groups scenario: users %d, want --groups × --group-size = %d", c.Users, c.Groups*c.GroupSize)
	}
	if c.Protocol == ProtocolCentrifugo {
		return nil
	}
	if c.API == "" {
		c.API = c.Dispatcher
	}
	if p, err := url.Parse(c.API); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("bench: groups scenario needs the server API: give --dispatcher or --api http://host:port (got %q)", c.API)
	}
	if c.APIKey == "" {
		return errors.New("bench: groups scenario needs the server API key: IMGATE_API_KEY or --api-key-file")
	}
	return nil
}

// groupID returns the id of the worker's local group g (global index FirstIdx/GroupSize + g).
func (w *worker) groupID(g int32) string {
	return w.cfg.UserPrefix + "-g" + strconv.Itoa(w.cfg.FirstIdx/w.cfg.GroupSize+int(g))
}

// groupOf returns the local group of local user u.
func (w *worker) groupOf(u int32) int32 { return u / int32(w.cfg.GroupSize) }

// centGroupChannel is the Centrifugo channel of a group.
func centGroupChannel(group string) string { return "group:" + group }

// createGroups puts the worker's groups through the server API, one request each.
func (w *worker) createGroups(ctx context.Context) error {
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	base := strings.TrimSuffix(w.cfg.API, "/") + "/api/v1/groups/"
	n := w.cfg.GroupSize
	for g := 0; g < len(w.users)/n; g++ {
		body, err := json.Marshal(map[string][]string{"members": w.users[g*n : (g+1)*n]})
		if err != nil {
			return err
		}
		id := w.groupID(int32(g))
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+url.PathEscape(id), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+w.cfg.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("bench: create group %s: %w", id, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("bench: create group %s: http %d: %s", id, resp.StatusCode, bytes.TrimSpace(msg))
		}
	}
	return nil
}

// groupMask is the audit record of one group message: bit i stands for connection
// base+i, the i-th device of the group (member i/Devices, device i%Devices).
type groupMask struct {
	base int32
	n    int32
	exp  []uint64
	dlv  []atomic.Uint64
}

func newGroupMask(base, n int32) *groupMask {
	words := (int(n) + 63) / 64
	return &groupMask{base: base, n: n, exp: make([]uint64, words), dlv: make([]atomic.Uint64, words)}
}

// pending returns the expected devices not yet delivered.
func (g *groupMask) pending() int64 {
	var k int64
	for i, e := range g.exp {
		k += int64(bits.OnesCount64(e &^ g.dlv[i].Load()))
	}
	return k
}

// deliver records a delivery to device i; it reports whether it was a duplicate and whether
// the device was expected.
func (g *groupMask) deliver(i int32) (dup, expected bool) {
	word, bit := i/64, uint64(1)<<(uint(i)%64)
	return g.dlv[word].Or(bit)&bit != 0, g.exp[word]&bit != 0
}

// audit adds the group message's pairs to a. dropped reports whether a connection dropped
// during the run; lossy collects the connections that missed a message while connected.
func (g *groupMask) audit(a *Audit, dropped func(conn int32) bool, lossy map[int32]struct{}) {
	for i, e := range g.exp {
		d := g.dlv[i].Load()
		a.Expected += uint64(bits.OnesCount64(e))
		a.Delivered += uint64(bits.OnesCount64(e & d))
		for missing := e &^ d; missing != 0; missing &= missing - 1 {
			conn := g.base + int32(i*64+bits.TrailingZeros64(missing))
			if dropped != nil && dropped(conn) {
				a.ExcludedDropped++
				continue
			}
			a.Lost++
			if lossy != nil {
				lossy[conn] = struct{}{}
			}
		}
	}
}

// anyDelivered reports whether any device received the message.
func (g *groupMask) anyDelivered() bool {
	for i := range g.dlv {
		if g.dlv[i].Load() != 0 {
			return true
		}
	}
	return false
}

// unexpected counts the deliveries to devices that were not expected.
func (g *groupMask) unexpected() uint64 {
	var k uint64
	for i, e := range g.exp {
		k += uint64(bits.OnesCount64(g.dlv[i].Load() &^ e))
	}
	return k
}

// sendGroup sends one group message from c to its group. It returns false when sending is over.
func (w *worker) sendGroup(c *conn) bool {
	idx, r, ok := w.reserve()
	if !ok {
		return false
	}
	g := w.groupOf(c.user)
	per := int32(w.cfg.GroupSize * w.cfg.Devices)
	m := newGroupMask(g*per, per)
	var k int64
	for i := int32(0); i < per; i++ {
		if j := m.base + i; j != c.idx && w.conns[j].state.Load() == stBound {
			m.exp[i/64] |= 1 << (uint(i) % 64)
			k++
		}
	}
	r.sender, r.receiver, r.grp = c.idx, -1, m
	w.expPairs.Add(k)
	now := time.Now().UnixNano()
	r.sendNanos = now
	r.state.Store(msgSent) // publishes the fields above
	gid := w.groupID(g)
	err := c.writeText(func(b []byte) []byte {
		if w.cfg.Protocol == ProtocolCentrifugo {
			return appendCentPublish(b, centGroupChannel(gid), c.userID(), w.tag, idx, now, w.body, false)
		}
		return appendGroupWords(b, c.userID(), gid, w.tag, idx, now, w.body)
	})
	w.wrote(r, err)
	return true
}

// onGroupDelivery records the delivery of group message r to c.
func (w *worker) onGroupDelivery(c *conn, r *msgRec) {
	i := c.idx - r.grp.base
	if i < 0 || i >= r.grp.n || c.idx == r.sender {
		w.misrouted.Add(1)
		return
	}
	dup, expected := r.grp.deliver(i)
	switch {
	case dup:
		r.dups.Add(1)
		w.dupDeliveries.Add(1)
	case expected:
		w.dlvPairs.Add(1)
	}
}
