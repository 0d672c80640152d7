package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Node is a node as the dispatcher's API lists it.
type Node struct {
	IP           string `json:"ip"`
	Port         int    `json:"port"`
	OnlineCounts int64  `json:"onlineCounts"`
	NodeID       string `json:"nodeId"`
	WSURL        string `json:"wsUrl"`
	Draining     bool   `json:"draining"`
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

// getJSON GETs url and decodes the body into v; it returns the status.
func getJSON(url string, v any) (int, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return resp.StatusCode, nil
}

// Nodes answers the dispatcher's node list.
func (c *Cluster) Nodes() ([]Node, error) {
	var r struct {
		Data struct {
			Nodes []Node `json:"nodes"`
		} `json:"data"`
	}
	st, err := getJSON(c.disp.HTTP+"/api/v1/nodes", &r)
	if err == nil && st != http.StatusOK {
		err = fmt.Errorf("GET /api/v1/nodes: status %d", st)
	}
	return r.Data.Nodes, err
}

// Pick answers the dispatcher's node for user.
func (c *Cluster) Pick(user string) (Node, error) {
	var r struct {
		Data *Node `json:"data"`
	}
	st, err := getJSON(c.disp.HTTP+"/api/v1/nodes/pick?userId="+user, &r)
	if err == nil && (st != http.StatusOK || r.Data == nil) {
		err = fmt.Errorf("pick: status %d", st)
	}
	if err != nil {
		return Node{}, err
	}
	return *r.Data, nil
}

// Presence answers the user's devices per node ID.
func (c *Cluster) Presence(user string) (map[string]int, error) {
	var r struct {
		Data struct {
			Nodes map[string]int `json:"nodes"`
		} `json:"data"`
	}
	st, err := getJSON(c.disp.HTTP+"/api/v1/presence?userId="+user, &r)
	if err == nil && st != http.StatusOK {
		err = fmt.Errorf("presence: status %d", st)
	}
	return r.Data.Nodes, err
}

// listedIDs answers the node IDs the dispatcher lists, sorted.
func (c *Cluster) listedIDs() []string {
	ns, err := c.Nodes()
	if err != nil {
		return nil
	}
	ids := make([]string, 0, len(ns))
	for _, n := range ns {
		ids = append(ids, n.NodeID)
	}
	slices.Sort(ids)
	return ids
}

// WaitListed waits until the dispatcher lists exactly ids.
func (c *Cluster) WaitListed(ids ...string) {
	c.t.Helper()
	want := slices.Sorted(slices.Values(ids))
	WaitState(c.t, 15*time.Second, "the dispatcher lists "+strings.Join(want, ","), func() (bool, string) {
		got := c.listedIDs()
		return slices.Equal(got, want), fmt.Sprint("listed: ", got)
	})
}

// Health answers the /readyz status of a role (base is its health or HTTP URL) and its
// checks: every dependency.
func Health(base string) (int, map[string]string) { return healthAt(base + "/readyz") }

// Live answers the /healthz (liveness) status of a role and its checks.
func Live(base string) (int, map[string]string) { return healthAt(base + "/healthz") }

func healthAt(url string) (int, map[string]string) {
	var r struct {
		Checks map[string]string `json:"checks"`
	}
	st, err := getJSON(url, &r)
	if err != nil {
		return 0, map[string]string{"get": err.Error()}
	}
	return st, r.Checks
}

// ServerList answers the znodes under /<ns>/server-list: name → data.
func (c *Cluster) ServerList() map[string]map[string]any {
	dir := "/" + c.NS + "/server-list"
	children, _, err := c.Svc.ZK.Children(dir)
	out := map[string]map[string]any{}
	if err != nil {
		return out
	}
	for _, ch := range children {
		b, _, err := c.Svc.ZK.Get(dir + "/" + ch)
		if err != nil {
			continue
		}
		var d map[string]any
		_ = json.Unmarshal(b, &d)
		out[ch] = d
	}
	return out
}

// PortClaims answers the Redis hash <ns>:ports.
func (c *Cluster) PortClaims() map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m, err := c.Svc.Redis.HGetAll(ctx, c.NS+":ports").Result()
	if err != nil {
		c.t.Logf("HGETALL %s:ports: %v", c.NS, err)
	}
	return m
}
