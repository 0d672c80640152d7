package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Port allocation: a node claims the first free port of base, base+step, base+2·step, ... on its
// host. A claim is a field "<host>:<port>" whose value is the owner: the node's registration token
// (NewToken, also ZKConfig.Token and NodeRecord.Token), which is known before the node has a port
// or a znode and survives re-registration. A cleaner that sees a node's znode vanish calls
// ReleaseOwner(rec.Token) once no node in the watcher's snapshot still carries that token.

// DefaultPortCandidates is how many candidates Acquire tries before giving up.
const DefaultPortCandidates = 100

var (
	// ErrNoFreePort is returned by Acquire when every candidate is claimed or not bindable.
	ErrNoFreePort = errors.New("cluster: ports: no free port")
	// ErrNotOwner is returned by Release and Claim when another owner holds the port.
	ErrNotOwner = errors.New("cluster: ports: claimed by another owner")
)

// portField is the hash field of a claim.
func portField(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// checkPortArgs validates Acquire's arguments.
func checkPortArgs(host string, base, step int, owner string) error {
	switch {
	case host == "":
		return errors.New("cluster: ports: empty host")
	case base <= 0 || base > 65535:
		return fmt.Errorf("cluster: ports: base %d out of range", base)
	case step <= 0:
		return fmt.Errorf("cluster: ports: step %d: want > 0", step)
	case owner == "":
		return errors.New("cluster: ports: empty owner")
	}
	return nil
}

// portBindable reports whether a TCP listener can be opened on host:port right now (it is closed
// again at once). A host that is not a local address (behind NAT) is checked on all interfaces.
func portBindable(host string, port int) error {
	ln, err := net.Listen("tcp", portField(host, port))
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		ln, err = net.Listen("tcp", portField("", port))
	}
	if err != nil {
		return fmt.Errorf("cluster: ports: %s not bindable: %w", portField(host, port), err)
	}
	return ln.Close()
}
