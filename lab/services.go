package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ports of the services StartServices runs, beyond FTP.
const (
	SSHPort        = 22
	HTTPPort       = 80
	HTTPAltPort    = 8080
	HTTPSPort      = 443
	UDPEchoPort    = 7777  // answers each datagram with the host's name and the datagram
	UDPSilentPort  = 51820 // WireGuard's port: takes datagrams, answers none
	SSHDaemonPath  = "/usr/sbin/sshd"
	serviceTimeout = 3 // seconds real clients wait (ssh-keyscan -T, curl -m, socat -T)
)

// Services a host can run: real servers, each as a user would start it.
const (
	SvcSSH       = "ssh"        // OpenSSH's sshd, with a host key of its own
	SvcHTTP      = "http"       // python3 -m http.server
	SvcHTTPAlt   = "http-8080"  // the same on HTTPAltPort
	SvcHTTPS     = "https"      // openssl s_server -www, self-signed
	SvcUDPEcho   = "udp-echo"   // socat, echoing datagrams after the host's name (as a game server's query port names itself)
	SvcUDPSilent = "udp-silent" // socat, writing datagrams to a file, answering none
)

// StartServices runs services on host h (the server or the other LAN
// host) and waits until each listens.
func (l *Lab) StartServices(h *Host, services ...string) {
	l.t.Helper()
	dir := filepath.Join(l.Dir, "svc-"+h.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	for _, s := range services {
		switch s {
		case SvcSSH:
			key := filepath.Join(dir, "ssh_host_ed25519_key")
			l.must("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "natdoctor-lab-"+h.Name, "-f", key)
			cfg := filepath.Join(dir, "sshd_config")
			listen := "ListenAddress 0.0.0.0\n"
			if l.Opts.IPv6 {
				listen += "ListenAddress ::\n"
			}
			conf := fmt.Sprintf("Port %d\n%sHostKey %s\nPidFile %s\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n",
				SSHPort, listen, key, filepath.Join(dir, "sshd.pid"))
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				l.t.Fatal(err)
			}
			// sshd insists on its privilege separation directory; the
			// package makes it only when its own service starts.
			if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
				l.t.Fatal(err)
			}
			l.runOn(h, fmt.Sprintf("tcp:%d", SSHPort), SSHDaemonPath, "-D", "-e", "-f", cfg)
		case SvcHTTP, SvcHTTPAlt:
			port := HTTPPort
			if s == SvcHTTPAlt {
				port = HTTPAltPort
			}
			www := filepath.Join(dir, "www")
			if err := os.MkdirAll(www, 0o755); err != nil {
				l.t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("natdoctor lab "+h.Name+"\n"), 0o644); err != nil {
				l.t.Fatal(err)
			}
			bind := "0.0.0.0"
			if l.Opts.IPv6 {
				bind = "::" // both families (net.ipv6.bindv6only is 0)
			}
			l.runOn(h, fmt.Sprintf("tcp:%d", port), "/usr/bin/python3", "-m", "http.server", fmt.Sprint(port), "--bind", bind, "--directory", www)
		case SvcHTTPS:
			key, cert := filepath.Join(dir, "https.key"), filepath.Join(dir, "https.crt")
			l.must("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
				"-subj", "/CN=natdoctor-lab-"+h.Name, "-keyout", key, "-out", cert)
			l.runOn(h, fmt.Sprintf("tcp:%d", HTTPSPort), "openssl", "s_server", "-quiet", "-accept", fmt.Sprint(HTTPSPort), "-www", "-cert", cert, "-key", key)
		case SvcUDPEcho:
			l.runOn(h, fmt.Sprintf("udp:%d", UDPEchoPort), "socat", fmt.Sprintf("UDP4-RECVFROM:%d,fork", UDPEchoPort),
				fmt.Sprintf(`SYSTEM:read l; echo "%s $l"`, h.Name))
		case SvcUDPSilent:
			l.runOn(h, fmt.Sprintf("udp:%d", UDPSilentPort), "socat", "-u", fmt.Sprintf("UDP4-RECV:%d", UDPSilentPort),
				"OPEN:"+l.SilentLog(h)+",creat,append")
		default:
			l.t.Fatalf("lab: no service %q", s)
		}
	}
}

// SilentLog is where host h's silent UDP service writes what it received.
func (l *Lab) SilentLog(h *Host) string { return filepath.Join(l.Dir, "svc-"+h.Name, "udp-silent.log") }

// SSHHostKey is host h's sshd host key, as ssh-keyscan prints it
// ("ssh-ed25519 AAAA...").
func (l *Lab) SSHHostKey(h *Host) string {
	b, err := os.ReadFile(filepath.Join(l.Dir, "svc-"+h.Name, "ssh_host_ed25519_key.pub"))
	if err != nil {
		l.t.Fatal(err)
	}
	f := strings.Fields(string(b))
	return f[0] + " " + f[1]
}

// SSHFingerprint is host h's host key fingerprint, as ssh-keygen -l
// prints it (SHA256:...).
func (l *Lab) SSHFingerprint(h *Host) string {
	out := l.must("ssh-keygen", "-l", "-f", filepath.Join(l.Dir, "svc-"+h.Name, "ssh_host_ed25519_key.pub"))
	return strings.Fields(out)[1]
}

// runOn starts a long-running server on host h and waits until it listens
// on want (proto:port).
func (l *Lab) runOn(h *Host, want, name string, args ...string) {
	l.t.Helper()
	var log lockedBuffer // written by the process's copier while a failed test reads it
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.Dir = filepath.Join(l.Dir, "svc-"+h.Name)
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("lab: start %s on %s: %v", name, h.Name, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	l.t.Cleanup(func() {
		if l.t.Failed() {
			l.t.Logf("%s on %s:\n%s", name, h.Name, log.String())
		}
	})
	l.waitListening(h, want)
}

// ServiceClient is what a real client saw of one port from the outside host.
type ServiceClient struct {
	Client string // the command, as run
	OK     bool   // reached the service it was meant to reach
	Output string // what it printed (first line)
}

// ReachSSH runs ssh-keyscan from the outside host against port of the
// router's WAN address; OK when the key it gets is host want's.
func (l *Lab) ReachSSH(t testing.TB, port int, want *Host) ServiceClient {
	t.Helper()
	out, _ := l.Outside.Run("ssh-keyscan", "-T", fmt.Sprint(serviceTimeout), "-t", "ed25519", "-p", fmt.Sprint(port), l.WAN().String())
	c := ServiceClient{Client: fmt.Sprintf("ssh-keyscan -p %d", port), Output: firstLine(out, "ssh-ed25519")}
	c.OK = strings.Contains(out, l.SSHHostKey(want))
	return c
}

// ReachHTTP runs curl from the outside host: http, or https (strict:
// checking the certificate; else -k). OK when the page is host want's.
func (l *Lab) ReachHTTP(t testing.TB, scheme string, port int, strict bool, want *Host) ServiceClient {
	t.Helper()
	args := []string{"-s", "-m", fmt.Sprint(serviceTimeout), "--noproxy", "*"}
	if !strict {
		args = append(args, "-k")
	}
	if scheme == "https" {
		args = append(args, "-v") // prints the certificate's subject
	}
	url := fmt.Sprintf("%s://%s:%d/", scheme, l.WAN(), port)
	out, _ := l.Outside.Run("curl", append(args, url)...)
	name := "curl " + strings.Join(args[5:], " ") + " " + url
	c := ServiceClient{Client: strings.TrimSpace(name), Output: firstLine(out, "")}
	if scheme == "http" {
		c.OK = strings.Contains(out, "natdoctor lab "+want.Name)
	} else {
		// openssl s_server -www answers with its own status page; whose
		// it is, the certificate says.
		c.Output = firstLine(out, "subject:", "SSL certificate problem")
		c.OK = strings.Contains(out, "subject: CN=natdoctor-lab-"+want.Name) && strings.Contains(out, "Ciphers")
	}
	return c
}

// ReachUDP sends a datagram from the outside host with socat. For the echo
// port, OK when it comes back; for the silent port, OK when the host
// want's service wrote it down.
func (l *Lab) ReachUDP(t testing.TB, port int, want *Host) ServiceClient {
	t.Helper()
	token := fmt.Sprintf("lab-probe-%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := l.Outside.Command(ctx, "socat", "-T", fmt.Sprint(serviceTimeout), "-", fmt.Sprintf("UDP4:%s:%d", l.WAN(), port))
	cmd.Stdin = strings.NewReader(token + "\n")
	out, _ := cmd.CombinedOutput()
	c := ServiceClient{Client: fmt.Sprintf("socat - UDP4:%s:%d", l.WAN(), port), Output: strings.TrimSpace(string(out))}
	if port != UDPSilentPort {
		c.OK = strings.Contains(string(out), want.Name+" "+token)
		return c
	}
	// The silent service writes what it gets; socat appends at once, but
	// the datagram may still be on its way: poll, bounded.
	deadline := time.Now().Add(2 * time.Second)
	for !c.OK && time.Now().Before(deadline) {
		b, _ := os.ReadFile(l.SilentLog(want))
		c.OK = bytes.Contains(b, []byte(token))
		if !c.OK {
			time.Sleep(pollInterval) // polling a file for a datagram, bounded by the deadline
		}
	}
	return c
}

// ReachSSH6 runs ssh-keyscan from the outside host against host want's
// global IPv6 address; OK when the key is want's.
func (l *Lab) ReachSSH6(t testing.TB, addr netip.Addr, want *Host) ServiceClient {
	t.Helper()
	out, _ := l.Outside.Run("ssh-keyscan", "-6", "-T", fmt.Sprint(serviceTimeout), "-t", "ed25519", "-p", fmt.Sprint(SSHPort), addr.String())
	c := ServiceClient{Client: "ssh-keyscan -6 " + addr.String(), Output: firstLine(out, "ssh-ed25519")}
	c.OK = strings.Contains(out, l.SSHHostKey(want))
	return c
}

// ReachHTTP6 runs curl from the outside host against addr:port over IPv6; OK
// when the page is want's.
func (l *Lab) ReachHTTP6(t testing.TB, addr netip.Addr, port int, want *Host) ServiceClient {
	t.Helper()
	url := fmt.Sprintf("http://[%s]:%d/", addr, port)
	out, _ := l.Outside.Run("curl", "-6", "-s", "-m", fmt.Sprint(serviceTimeout), "--noproxy", "*", url)
	return ServiceClient{Client: "curl -6 " + url, Output: firstLine(out, ""), OK: strings.Contains(out, "natdoctor lab "+want.Name)}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
