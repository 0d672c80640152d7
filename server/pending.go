package server

import (
	"net"
	"net/netip"
	"sync"
)

// pendingIPs counts, per source IP, the connections that have not sent CONNECT_INIT
// yet (handshake or awaiting init), so that one address cannot hold thousands of
// sockets open for the init timeout each (issue 10, item 11). Every loop shares it:
// the mutex guards one map operation and is never held across anything else, so an
// event loop never waits on more than a few map operations of another.
type pendingIPs struct {
	max int // over it a new connection is refused; <= 0: no cap
	mu  sync.Mutex
	n   map[netip.Addr]int32 // guarded by mu; entries at zero are deleted
}

func newPendingIPs(max int) *pendingIPs {
	return &pendingIPs{max: max, n: make(map[netip.Addr]int32)}
}

// add counts a new pending connection from ip. It returns false, counting nothing,
// when ip already has max pending connections.
func (p *pendingIPs) add(ip netip.Addr) bool {
	if p.max <= 0 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(p.n[ip]) >= p.max {
		return false
	}
	p.n[ip]++
	return true
}

// done uncounts a pending connection from ip: it sent CONNECT_INIT or closed.
func (p *pendingIPs) done(ip netip.Addr) {
	if p.max <= 0 {
		return
	}
	p.mu.Lock()
	if p.n[ip] <= 1 {
		delete(p.n, ip)
	} else {
		p.n[ip]--
	}
	p.mu.Unlock()
}

// remoteIP is the source IP of a connection (IPv4-mapped IPv6 unmapped); the zero
// Addr when unknown, which all such connections then share.
func remoteIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
