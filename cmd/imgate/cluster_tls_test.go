package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imgate/cluster/clustertest"
)

// TestClusterTLSProxy runs the TLS setup of docs/deploy.md: nginx terminates TLS with a
// certificate and forwards each node's public path to it; each node advertises its public
// wss:// URL (--advertise-url), which its znode carries beside ip, port and onlineCounts and
// the dispatcher hands out as wsUrl. Two clients connect through wss:// with a browser
// Origin and chat across the two nodes; the nodes' Origin check still refuses a foreign
// Origin behind the proxy.
func TestClusterTLSProxy(t *testing.T) {
	nginx := nginxPath(t)
	dir := t.TempDir()
	pool := writeSelfSigned(t, dir)
	proxyPort := freePort(t)
	public := fmt.Sprintf("https://127.0.0.1:%d", proxyPort)
	advertised := func(i int) string { return fmt.Sprintf("wss://127.0.0.1:%d/n%d/ws", proxyPort, i) }

	c := clustertest.NewCluster(t, binPath)
	c.StartSaver()
	c.StartDispatch()
	n1 := c.StartNode(1, "--advertise-url", advertised(1), "--allowed-origins", public)
	n2 := c.StartNode(2, "--advertise-url", advertised(2), "--allowed-origins", public)
	c.WaitListed(n1.ID, n2.ID)
	startNginx(t, nginx, dir, proxyPort, map[string]int{"/n1/ws": n1.Port, "/n2/ws": n2.Port})

	want := map[string]string{n1.ID: advertised(1), n2.ID: advertised(2)}
	zn := c.ServerList()
	for id, url := range want {
		d := zn[id]
		if d["wsUrl"] != url || d["ip"] != "127.0.0.1" || d["port"] == nil || d["onlineCounts"] == nil {
			t.Errorf("znode %s: %v, want wsUrl %s beside ip, port, onlineCounts", id, d, url)
		}
	}
	picked, err := c.Pick("alice")
	if err != nil || picked.WSURL != want[picked.NodeID] {
		t.Fatalf("pick: %+v, %v; want the node's advertised URL", picked, err)
	}

	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	origin := http.Header{"Origin": {public}}
	if _, resp, err := dialer.Dial(advertised(1), http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Errorf("a foreign Origin through the proxy: err %v, status %d; want 403 from the node", err, status)
	}
	bob := tlsClient(t, dialer, advertised(2), origin, "bob")
	alice := tlsClient(t, dialer, advertised(1), origin, "alice")
	alice.send(map[string]any{"chatMsg": map[string]any{"senderId": "alice", "receiverId": "bob", "msg": "hello over TLS",
		"msgType": 1, "clientMsgId": "tls-1"}})
	ack := alice.read()
	if ack["msgType"].(float64) != 11 || ack["clientMsgId"] != "tls-1" || ack["msgId"] == nil {
		t.Fatalf("alice got %v, want the ACK of tls-1", ack)
	}
	got := bob.read()
	if got["msg"] != "hello over TLS" || got["senderId"] != "alice" || got["msgId"] != ack["msgId"] {
		t.Fatalf("bob got %v, want alice's message %v", got, ack["msgId"])
	}
	t.Logf("alice on %s and bob on %s chatted through nginx (TLS) at %s", n1.ID, n2.ID, public)
}

// tlsClient connects user through the proxy and waits for the ACK of its CONNECT_INIT.
func tlsClient(t *testing.T, d websocket.Dialer, url string, h http.Header, user string) *wsClient {
	t.Helper()
	conn, resp, err := d.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("%s: dial %s: %v (status %d)", user, url, err, status)
	}
	t.Cleanup(func() { _ = conn.Close() })
	w := &wsClient{t: t, c: conn}
	w.send(map[string]any{"chatMsg": map[string]any{"senderId": user, "msgType": 0}, "cursor": 0})
	if cm := w.read(); cm["msgType"].(float64) != 11 {
		t.Fatalf("%s: first answer %v, want the init ACK", user, cm)
	}
	return w
}

// nginxPath finds the nginx binary that scripts/services.sh installs.
func nginxPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatal("nginx not found: run scripts/services.sh up nginx (make test does)")
	return ""
}

// writeSelfSigned writes cert.pem and key.pem (ECDSA P-256, for 127.0.0.1 and localhost,
// valid for two hours) into dir and returns a pool that trusts the certificate.
func writeSelfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "imgate test proxy"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, b := range map[string][]byte{
		"cert.pem": certPEM,
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// nginxConf is the proxy of docs/deploy.md ("TLS in front") for a test: one location per
// node path, logs and temp files in the test's directory, in the foreground.
const nginxConf = `# written by TestClusterTLSProxy
{{user}}
daemon off;
worker_processes 1;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log info;
events { worker_connections 256; }
http {
    access_log {{dir}}/access.log;
    client_body_temp_path {{dir}}/tmp-body;
    proxy_temp_path {{dir}}/tmp-proxy;
    fastcgi_temp_path {{dir}}/tmp-fastcgi;
    uwsgi_temp_path {{dir}}/tmp-uwsgi;
    scgi_temp_path {{dir}}/tmp-scgi;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    server {
        listen 127.0.0.1:{{port}} ssl;
        ssl_certificate {{dir}}/cert.pem;
        ssl_certificate_key {{dir}}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
{{locations}}
    }
}
`

// nginxLocation forwards one public path to one node's WebSocket path.
const nginxLocation = `        location = {{path}} {
            proxy_pass http://127.0.0.1:{{node}}/ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
`

// startNginx runs nginx on 127.0.0.1:port with routes (public path → node port), waits
// until it completes TLS handshakes and stops it at cleanup.
func startNginx(t *testing.T, bin, dir string, port int, routes map[string]int) {
	t.Helper()
	var locs strings.Builder
	for path, node := range routes {
		locs.WriteString(strings.NewReplacer("{{path}}", path, "{{node}}", fmt.Sprint(node)).Replace(nginxLocation))
	}
	user := "" // as root, nginx's workers would switch to nobody, who cannot enter dir
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := strings.NewReplacer("{{user}}", user, "{{dir}}", dir, "{{port}}", fmt.Sprint(port),
		"{{locations}}", locs.String()).Replace(nginxConf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log")) //nolint:gosec // G204: nginx with the test's config
	out, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = out.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful stop of master and workers
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	logs := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		o, _ := os.ReadFile(filepath.Join(dir, "nginx.out"))
		return string(o) + string(b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
			&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // G402: readiness probe only; the clients verify
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("nginx exited (%v):\n%s", err, logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not answering TLS on port %d within 15s: %v\n%s", port, err, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
