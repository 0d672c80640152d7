package clustertest

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is one running role of the binary.
type Proc struct {
	Name  string
	Start time.Time // when the process was started
	Err   error     // the process's exit; valid once Exited is closed

	// From the ready line (whichever the role prints): the WebSocket URL, the node's
	// registration id, the health URL, the dispatcher's HTTP URL.
	WS, ID, Health, HTTP string
	Port                 int // the node's WebSocket port

	cmd    *exec.Cmd
	exited chan struct{}

	mu    sync.Mutex
	lines []string
}

var (
	readyRE = regexp.MustCompile(`imgate (?:standalone|node|saver|dispatch) ready"?(.*)$`)
	kvRE    = regexp.MustCompile(`(\w+)=(\S+)`)
	portRE  = regexp.MustCompile(`port allocated"? .*\bport=(\d+)`)
)

// Start runs the binary bin with args as the process name; with ready it waits (≤ 30 s) for
// the role's ready line.
func Start(t testing.TB, bin, name string, ready bool, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{})} //nolint:gosec // G204: the binary under test, with arguments the test wrote
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyc := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			if m := readyRE.FindStringSubmatch(line); m != nil {
				kv := map[string]string{}
				for _, f := range kvRE.FindAllStringSubmatch(m[1], -1) {
					kv[f[1]] = f[2]
				}
				select {
				case readyc <- kv:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.Err = p.cmd.Wait()
		close(p.exited)
	}()
	if !ready {
		return p
	}
	select {
	case kv := <-readyc:
		p.setReady(kv)
	case <-p.exited:
		t.Fatalf("%s exited before ready (%v):\n%s", name, p.Err, p.Tail(30))
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready within 30s:\n%s", name, p.Tail(30))
	}
	return p
}

// setReady takes the fields of the ready line.
func (p *Proc) setReady(kv map[string]string) {
	p.WS, p.ID, p.Health, p.HTTP = kv["ws"], kv["id"], kv["health"], kv["http"]
	if p.WS != "" {
		if _, port, err := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(p.WS, "ws://"), "/ws")); err == nil {
			p.Port, _ = strconv.Atoi(port)
		}
	}
}

// Exited is closed when the process has exited; Err holds its exit then.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Signal sends s to the process.
func (p *Proc) Signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

// Kill9 sends SIGKILL and waits for the exit.
func (p *Proc) Kill9(t testing.TB) {
	t.Helper()
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die after SIGKILL", p.Name)
	}
}

// alive reports whether the process has not exited.
func (p *Proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Stop ends the process: SIGCONT, SIGTERM, SIGKILL after grace.
func (p *Proc) Stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// Log returns the lines the process wrote to stderr so far.
func (p *Proc) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// Tail returns the last n lines of the log, indented, for failure messages.
func (p *Proc) Tail(n int) string {
	l := p.Log()
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return "  " + strings.Join(l, "\n  ")
}
