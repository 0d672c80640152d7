package ports

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// portCandidates is how many candidates Acquire tries before giving up.
const portCandidates = 100

var (
	// ErrNoFreePort is returned by Acquire when every candidate is claimed or not bindable.
	ErrNoFreePort = errors.New("ports: no free port")
	// ErrNotOwner is returned by Release and Claim when another owner holds the port.
	ErrNotOwner = errors.New("ports: claimed by another owner")
)

// portField is the hash field of a claim.
func portField(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// checkPortArgs validates Acquire's arguments.
func checkPortArgs(host string, base, step int, owner string) error {
	switch {
	case host == "":
		return errors.New("ports: empty host")
	case base <= 0 || base > 65535:
		return fmt.Errorf("ports: base %d out of range", base)
	case step <= 0:
		return fmt.Errorf("ports: step %d: want > 0", step)
	case owner == "":
		return errors.New("ports: empty owner")
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
		return fmt.Errorf("ports: %s not bindable: %w", portField(host, port), err)
	}
	return ln.Close()
}
