// Package lab builds a home network out of Linux network namespaces for
// natdoctor's integration tests: an outside host on the internet side, a
// router running nftables NAT and the real miniupnpd (UPnP IGD, NAT-PMP and
// PCP), the FTP server host running the real pure-ftpd with a passive range,
// and a second LAN host that the router can be told to use as its default
// host (DMZ), as the user's AirPort did.
//
// Addresses exist only inside the namespaces the lab creates; the namespaces
// have no link to the machine's own network, so nothing the lab does can
// reach any other address.
package lab

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Addresses of the lab's hosts. WAN is public-looking because miniupnpd
// refuses reserved WAN addresses; it is assigned only inside the lab.
var (
	WANAddr        = netip.MustParseAddr("11.0.0.1")   // router, internet side
	OutsideAddr    = netip.MustParseAddr("11.0.0.2")   // the outside host
	CGNATWANAddr   = netip.MustParseAddr("100.64.0.1") // router WAN with Options.CGNAT
	CGNATOutside   = netip.MustParseAddr("100.64.0.2") // outside host with Options.CGNAT
	RouterLANAddr  = netip.MustParseAddr("10.0.1.1")
	ServerAddr     = netip.MustParseAddr("10.0.1.2")
	DefaultHostLAN = netip.MustParseAddr("10.0.1.253") // the AirPort's default host

	// IPv6 with Options.IPv6: documentation prefixes (RFC 3849), inside the
	// namespaces only. The router routes them and translates nothing.
	WAN6       = netip.MustParseAddr("2001:db8:1::1")   // router, internet side
	Outside6   = netip.MustParseAddr("2001:db8:1::2")   // the outside host
	RouterLAN6 = netip.MustParseAddr("2001:db8:2::1")   // router, LAN side
	Server6    = netip.MustParseAddr("2001:db8:2::2")   // the server's global address
	Other6     = netip.MustParseAddr("2001:db8:2::253") // the other LAN host
)

// Fixed facts of the lab's services.
const (
	FTPUser        = "ftptest"
	FTPPassword    = "lab-secret-Pa55"
	PassiveLow     = 42000
	PassiveHigh    = 42010
	UPnPHTTPPort   = 5000
	ServerFortune  = "natdoctor lab server 10.0.1.2"
	OtherFortune   = "other machine 10.0.1.253"
	RouterFriendly = "natdoctor lab router"
)

// Bounds on every wait the lab makes. They catch a hang, not a slow
// machine: every command returns as soon as it is done, and a loaded 2-core
// machine can take many times the usual second. What a test asserts about
// time, it measures on its own.
const (
	commandTimeout = 2 * time.Minute
	readyTimeout   = time.Minute
	pollInterval   = 20 * time.Millisecond
)

// Options switch the lab's router and server into the situations the tests need.
type Options struct {
	DefaultHost    bool  // the router sends every unsolicited inbound connection to DefaultHostLAN, ahead of the mappings
	NoUPnP         bool  // miniupnpd without UPnP IGD
	NoPMP          bool  // miniupnpd without NAT-PMP and PCP
	IGDv1          bool  // miniupnpd describes itself as IGD v1
	CGNAT          bool  // the router's WAN address is in 100.64/10 (carrier-grade NAT)
	SilentGateway  bool  // the router drops NAT-PMP/PCP and SSDP
	SecureModeOff  bool  // let LAN hosts map ports to other LAN hosts
	NoOtherFTP     bool  // the second LAN host runs no FTP server
	ForcePassiveIP bool  // pure-ftpd advertises the router's WAN address in PASV replies
	DenyPorts      []int // miniupnpd refuses mappings of these external ports (a failure halfway through a range)
	FTPTLS         int   // the server's pure-ftpd TLS level (-Y): 0 none, 1 optional, 2 required; self-signed certificate
	NoChroot       bool  // the server's account is not kept inside its home: the whole disk is browsable
	// ServerPassiveHigh, when set, is the top of the passive range the
	// server really uses (PassiveLow-ServerPassiveHigh), whatever is mapped.
	ServerPassiveHigh int
	// ReverseDNS makes the server look up each client's name before its
	// greeting, against a DNS server that never answers: the greeting comes
	// about ReverseDNSDelay late (pure-ftpd without -H).
	ReverseDNS  bool
	NoServerFTP bool // the server host runs no FTP server
	// DefaultHostIsServer makes the server itself the router's default
	// host (with DefaultHost or not).
	DefaultHostIsServer bool
	// OpenWrtPolicy gives miniupnpd OpenWrt's default permission rules:
	// mappings of ports 1024-65535 only, so port 21 is refused.
	OpenWrtPolicy bool
	// Server is the FTP server the server host runs: PureFTPd (""),
	// Vsftpd, ProFTPD or Pyftpdlib.
	Server string
	// IPv6 gives every link an IPv6 prefix too; the router forwards IPv6
	// and its firewall drops inbound connections unless OpenIPv6 opens
	// them (pinholes made by hand in the router, as users do).
	IPv6 bool
	// OpenIPv6 allows inbound IPv6 to the server: "tcp:22", "udp:51820",
	// or "all" (a router whose IPv6 firewall is off).
	OpenIPv6 []string
	// ServerIPv4Only keeps the server's FTP server on its IPv4 address
	// with IPv6 (else it listens on every address of the host).
	ServerIPv4Only bool
}

// ReverseDNSDelay is how long the server's resolver waits with
// Options.ReverseDNS before it gives up and greets.
const ReverseDNSDelay = 7 * time.Second

// Host is one namespace of the lab.
type Host struct {
	Name string // role: outside, router, server, other
	NS   string // network namespace name
	Tmp  string // TMPDIR of commands run here: hosts share no lock files
}

// Lab is a running lab.
type Lab struct {
	Outside, Router, Server, Other *Host
	Opts                           Options
	Dir                            string // files of the lab (configs, FTP root, logs)

	t        testing.TB
	mu       sync.Mutex
	upnpd    *exec.Cmd
	upnpdLog *lockedBuffer
	// httpPort is miniupnpd's HTTP port: UPnPHTTPPort until a restart
	// on another one (RestartRouterDaemonOn).
	httpPort int
	procs    []*exec.Cmd
	// serverConfig is the server's configuration file, when it has one.
	serverConfig string
}

// packagesTxt lists every tool the lab and its tests run, with its Debian
// package; lab/install-deps installs from the same list.
//
//go:embed packages.txt
var packagesTxt string

// Tool is one program the lab runs and the Debian package that brings it.
type Tool struct{ Name, Package string }

// Tools returns the tools of packages.txt.
func Tools() []Tool {
	var ts []Tool
	for _, line := range strings.Split(packagesTxt, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || f[0] == "-" {
			continue
		}
		ts = append(ts, Tool{Name: f[0], Package: f[1]})
	}
	return ts
}

// Available reports why the lab cannot run here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces)")
	}
	var missing, pkgs []string
	for _, tool := range Tools() {
		if _, err := exec.LookPath(tool.Name); err != nil {
			missing = append(missing, tool.Name)
			if !slices.Contains(pkgs, tool.Package) {
				pkgs = append(pkgs, tool.Package)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing tools: %s (lab/install-deps installs %s)", strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return nil
}

// Required reports whether NATDOCTOR_LAB=1 asks for the lab: then a lab
// that cannot start fails the test instead of skipping it.
func Required() bool { return os.Getenv("NATDOCTOR_LAB") == "1" }

// Skip skips t under -short, and skips it (or fails it, when the lab is
// required) if the lab cannot run.
func Skip(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test skipped under -short")
	}
	err := Available()
	if err == nil {
		return
	}
	if Required() {
		t.Fatalf("NATDOCTOR_LAB=1 but the lab cannot start: %v", err)
	}
	t.Skipf("lab test skipped: %v; run as root with the tools installed (see .ci/run), or `make lab-test`", err)
}

// Start builds a lab for t and removes it when t ends, also after a failure.
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	Skip(t)
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	prefix := "nd" + hex.EncodeToString(id)
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // pure-ftpd drops to nobody
		t.Fatal(err)
	}
	l := &Lab{
		Outside:  &Host{Name: "outside", NS: prefix + "-out"},
		Router:   &Host{Name: "router", NS: prefix + "-rtr"},
		Server:   &Host{Name: "server", NS: prefix + "-srv"},
		Other:    &Host{Name: "other", NS: prefix + "-oth"},
		Opts:     opts,
		Dir:      dir,
		t:        t,
		httpPort: UPnPHTTPPort,
	}
	t.Cleanup(l.close)
	for _, h := range l.hosts() {
		h.Tmp = filepath.Join(dir, "tmp-"+h.Name)
		if err := os.MkdirAll(h.Tmp, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	l.buildNetwork()
	l.loadRules()
	if !opts.NoServerFTP {
		l.startServerFTP()
	}
	if !opts.NoOtherFTP {
		l.startFTP(l.Other, DefaultHostLAN, OtherFortune, false)
	}
	l.StartRouterDaemon()
	return l
}

// WAN returns the router's WAN (external) address.
func (l *Lab) WAN() netip.Addr {
	if l.Opts.CGNAT {
		return CGNATWANAddr
	}
	return WANAddr
}

// OutsideIP returns the outside host's address.
func (l *Lab) OutsideIP() netip.Addr {
	if l.Opts.CGNAT {
		return CGNATOutside
	}
	return OutsideAddr
}

func (l *Lab) hosts() []*Host { return []*Host{l.Outside, l.Router, l.Server, l.Other} }

// must runs a command in the root namespace and fails the test on error.
func (l *Lab) must(name string, args ...string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("lab: %s %s: %v after %v\n%s", name, strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), out)
	}
	return string(out)
}

func (l *Lab) buildNetwork() {
	l.t.Helper()
	for _, h := range l.hosts() {
		l.must("ip", "netns", "add", h.NS)
		l.must("ip", "-n", h.NS, "link", "set", "lo", "up")
	}
	r := l.Router.NS
	veth := func(a *Host, aName string, b *Host, bName string) {
		l.must("ip", "link", "add", aName, "netns", a.NS, "type", "veth", "peer", "name", bName, "netns", b.NS)
	}
	veth(l.Router, "wan", l.Outside, "eth0")
	veth(l.Router, "lan0", l.Server, "eth0")
	veth(l.Router, "lan1", l.Other, "eth0")
	l.must("ip", "-n", r, "link", "add", "br0", "type", "bridge")
	for _, port := range []string{"lan0", "lan1"} {
		l.must("ip", "-n", r, "link", "set", port, "master", "br0")
		l.must("ip", "-n", r, "link", "set", port, "up")
	}
	wanPrefix := "/24"
	l.must("ip", "-n", r, "addr", "add", l.WAN().String()+wanPrefix, "dev", "wan")
	l.must("ip", "-n", r, "addr", "add", RouterLANAddr.String()+"/24", "dev", "br0")
	l.must("ip", "-n", r, "link", "set", "wan", "up")
	l.must("ip", "-n", r, "link", "set", "br0", "up")
	l.must("ip", "-n", r, "route", "add", "default", "via", l.OutsideIP().String())
	l.must("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")

	l.must("ip", "-n", l.Outside.NS, "addr", "add", l.OutsideIP().String()+wanPrefix, "dev", "eth0")
	l.must("ip", "-n", l.Outside.NS, "link", "set", "eth0", "up")
	for _, h := range []struct {
		host *Host
		addr netip.Addr
	}{{l.Server, ServerAddr}, {l.Other, DefaultHostLAN}} {
		l.must("ip", "-n", h.host.NS, "addr", "add", h.addr.String()+"/24", "dev", "eth0")
		l.must("ip", "-n", h.host.NS, "link", "set", "eth0", "up")
		l.must("ip", "-n", h.host.NS, "route", "add", "default", "via", RouterLANAddr.String())
	}
	if l.Opts.IPv6 {
		l.buildIPv6()
	}
}

// buildIPv6 adds the IPv6 prefixes (nodad: usable at once) and routes.
func (l *Lab) buildIPv6() {
	l.t.Helper()
	r := l.Router.NS
	l.must("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	l.must("ip", "-n", r, "-6", "addr", "add", WAN6.String()+"/64", "dev", "wan", "nodad")
	l.must("ip", "-n", r, "-6", "addr", "add", RouterLAN6.String()+"/64", "dev", "br0", "nodad")
	l.must("ip", "-n", l.Outside.NS, "-6", "addr", "add", Outside6.String()+"/64", "dev", "eth0", "nodad")
	l.must("ip", "-n", l.Outside.NS, "-6", "route", "add", "2001:db8:2::/64", "via", WAN6.String())
	for _, h := range []struct {
		host *Host
		addr netip.Addr
	}{{l.Server, Server6}, {l.Other, Other6}} {
		l.must("ip", "-n", h.host.NS, "-6", "addr", "add", h.addr.String()+"/64", "dev", "eth0", "nodad")
		l.must("ip", "-n", h.host.NS, "-6", "route", "add", "default", "via", RouterLAN6.String())
	}
}

// rules is the router's nftables ruleset: NAT out of the WAN, a forward
// policy of drop except established, LAN-originated and mapped traffic, and
// the chains miniupnpd fills. The defaulthost chains stay empty unless the
// default host (DMZ) is on.
const rules = `flush ruleset
table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
    jump silent
  }
  chain silent {
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "br0" oifname "wan" accept
    # LAN hosts reach each other, as through a home switch (bridged
    # frames pass this chain where br_netfilter is loaded).
    iifname "br0" oifname "br0" accept
    ct status dnat jump defaulthost_forward
    jump miniupnpd
    jump pinholes
  }
  chain pinholes {
  }
  chain defaulthost_forward {
  }
  chain miniupnpd {
  }
}
table inet nat {
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump defaulthost
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "wan" meta nfproto ipv4 masquerade
  }
  chain defaulthost {
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
}
`

func (l *Lab) nft(script string) {
	l.t.Helper()
	path := filepath.Join(l.Dir, "rules-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".nft")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.must("ip", "netns", "exec", l.Router.NS, "nft", "-f", path)
}

func (l *Lab) loadRules() {
	l.t.Helper()
	l.nft(rules)
	l.SetDefaultHost(l.Opts.DefaultHost || l.Opts.DefaultHostIsServer)
	for _, o := range l.Opts.OpenIPv6 {
		if o == "all" {
			l.nft(fmt.Sprintf("add rule inet filter pinholes iifname \"wan\" ip6 daddr %s accept\n", Server6))
			continue
		}
		proto, port, _ := strings.Cut(o, ":")
		l.nft(fmt.Sprintf("add rule inet filter pinholes iifname \"wan\" ip6 daddr %s %s dport %s accept\n", Server6, proto, port))
	}
	if l.Opts.SilentGateway {
		l.nft(`add rule inet filter silent iifname "br0" udp dport { 1900, 5351 } drop` + "\n")
	}
	if l.Opts.ReverseDNS {
		// The router is the LAN's DNS server, and it never answers.
		l.nft(`add rule inet filter silent iifname "br0" meta l4proto { tcp, udp } th dport 53 drop` + "\n")
	}
}

// SetDefaultHost turns the router's default host (DMZ) on or off. When on,
// every new inbound TCP or UDP connection on the WAN goes to DefaultHostLAN
// (ServerAddr with Options.DefaultHostIsServer), ahead of the port
// mappings: the AirPort conflict of the field notes.
func (l *Lab) SetDefaultHost(on bool) {
	l.t.Helper()
	script := "flush chain inet nat defaulthost\nflush chain inet filter defaulthost_forward\n"
	target := DefaultHostLAN
	if l.Opts.DefaultHostIsServer {
		target = ServerAddr
	}
	if on {
		script += fmt.Sprintf(`add rule inet nat defaulthost iifname "wan" meta l4proto { tcp, udp } dnat ip to %s
add rule inet filter defaulthost_forward ip daddr %s accept
`, target, target)
	}
	l.nft(script)
	l.Opts.DefaultHost = on
}

func (l *Lab) upnpdConfig() string {
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprintf(`ext_ifname=wan
listening_ip=br0
http_port=%d
enable_upnp=%s
enable_natpmp=%s
secure_mode=%s
force_igd_desc_v1=%s
system_uptime=no
notify_interval=60
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
friendly_name=%s
manufacturer_name=OpenWrt
model_name=natdoctor-lab
model_number=2.3.1
upnp_table_name=filter
upnp_nat_table_name=nat
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
min_lifetime=60
max_lifetime=86400
%sallow %s 10.0.1.0/24 %s
deny 0-65535 0.0.0.0/0 0-65535
`, l.httpPort, yesNo(!l.Opts.NoUPnP), yesNo(!l.Opts.NoPMP), yesNo(!l.Opts.SecureModeOff),
		yesNo(l.Opts.IGDv1), RouterFriendly, denyRules(l.Opts.DenyPorts), allowed(l.Opts.OpenWrtPolicy), allowed(l.Opts.OpenWrtPolicy))
}

// allowed is the port range miniupnpd's permission rule allows.
func allowed(openWrt bool) string {
	if openWrt {
		return "1024-65535" // OpenWrt's /etc/config/upnpd default
	}
	return "1-65535"
}

func denyRules(ports []int) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "deny %d 0.0.0.0/0 0-65535\n", p)
	}
	return b.String()
}

// StartRouterDaemon starts miniupnpd and waits until it serves.
func (l *Lab) StartRouterDaemon() {
	l.t.Helper()
	conf := filepath.Join(l.Dir, "miniupnpd.conf")
	if err := os.WriteFile(conf, []byte(l.upnpdConfig()), 0o644); err != nil {
		l.t.Fatal(err)
	}
	var log lockedBuffer
	cmd := exec.Command("ip", "netns", "exec", l.Router.NS, "miniupnpd", "-d", "-f", conf, "-P", filepath.Join(l.Dir, "miniupnpd.pid"))
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("lab: start miniupnpd: %v", err)
	}
	l.mu.Lock()
	l.upnpd, l.upnpdLog = cmd, &log
	l.mu.Unlock()
	var want []string
	if !l.Opts.NoPMP {
		want = append(want, "udp:5351")
	}
	if !l.Opts.NoUPnP {
		want = append(want, "tcp:"+strconv.Itoa(l.httpPort))
	}
	if len(want) == 0 {
		return
	}
	l.waitListening(l.Router, want...)
}

// StopRouterDaemon stops miniupnpd and, like a router that reboots,
// forgets every mapping it made.
func (l *Lab) StopRouterDaemon() {
	l.t.Helper()
	l.mu.Lock()
	cmd := l.upnpd
	l.upnpd = nil
	l.mu.Unlock()
	if cmd == nil {
		return
	}
	stopProcess(cmd)
	l.nft("flush chain inet filter miniupnpd\nflush chain inet nat prerouting_miniupnpd\nflush chain inet nat postrouting_miniupnpd\n")
}

// RestartRouterDaemon is a router reboot: mappings are forgotten and the
// NAT-PMP/PCP epoch starts again.
func (l *Lab) RestartRouterDaemon() {
	l.t.Helper()
	l.StopRouterDaemon()
	l.StartRouterDaemon()
}

// RestartRouterDaemonOn is a router that reboots and serves UPnP on
// another HTTP port, as miniupnpd does with http_port=0 (a random port
// each start): mappings are forgotten, the Location changes.
func (l *Lab) RestartRouterDaemonOn(httpPort int) {
	l.t.Helper()
	l.StopRouterDaemon()
	l.httpPort = httpPort
	l.StartRouterDaemon()
}

// RouterLog returns what miniupnpd has logged so far.
func (l *Lab) RouterLog() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.upnpdLog == nil {
		return ""
	}
	return l.upnpdLog.String()
}

func (l *Lab) startFTP(h *Host, addr netip.Addr, fortune string, withUser bool) {
	l.t.Helper()
	base := filepath.Join(l.Dir, h.Name)
	root := filepath.Join(base, "ftproot")
	if err := os.MkdirAll(root, 0o755); err != nil {
		l.t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		name := filepath.Join(root, fmt.Sprintf("file%d.txt", i))
		if err := os.WriteFile(name, []byte("natdoctor lab file\n"), 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "fortune"), []byte(fortune+"\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.must("chown", "-R", "nobody:nogroup", root)
	// The account is written with a SHA-512 crypt hash: pure-pw's default
	// (argon2id) costs about three seconds of CPU per login here.
	passwd := filepath.Join(base, "pureftpd.passwd")
	var entries string
	if withUser {
		hash := strings.TrimSpace(l.must("openssl", "passwd", "-6", "-salt", "natdoctorlab", FTPPassword))
		home := root + "/./" // "/./": chroot to the home
		if l.Opts.NoChroot && h == l.Server {
			home = root
		}
		entries = fmt.Sprintf("%s:%s:65534:65534::%s::::::::::::\n", FTPUser, hash, home)
	} // else an empty user database: every login is refused, as on a machine that is not the user's server
	if err := os.WriteFile(passwd, []byte(entries), 0o600); err != nil {
		l.t.Fatal(err)
	}
	pdb := filepath.Join(base, "pureftpd.pdb")
	l.must("pure-pw", "mkdb", pdb, "-f", passwd)
	high := PassiveHigh
	if l.Opts.ServerPassiveHigh != 0 && h == l.Server {
		high = l.Opts.ServerPassiveHigh
	}
	args := []string{"netns", "exec", h.NS, "pure-ftpd",
		"-l", "puredb:" + pdb, "-E",
		"-p", fmt.Sprintf("%d:%d", PassiveLow, high),
		"-c", "15", "-C", "15",
		"-F", filepath.Join(base, "fortune"),
		"-g", filepath.Join(base, "pure-ftpd.pid"),
		"-S", addr.String() + ",21"}
	if l.Opts.IPv6 && h == l.Server && !l.Opts.ServerIPv4Only {
		args[len(args)-1] = ",21" // every address: IPv4 and IPv6
	}
	if l.Opts.ReverseDNS && h == l.Server {
		l.deadDNS(h)
	} else {
		args = append(args, "-H") // DontResolve
	}
	if l.Opts.ForcePassiveIP && h == l.Server {
		args = append(args, "-P", l.WAN().String())
	}
	if !l.Opts.NoChroot || h != l.Server {
		args = append(args, "-A") // chroot everyone
	}
	if l.Opts.FTPTLS > 0 && h == l.Server {
		// A self-signed certificate, as home servers have.
		key, cert := filepath.Join(base, "tls.key"), filepath.Join(base, "tls.crt")
		l.must("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
			"-subj", "/CN=natdoctor-lab", "-keyout", key, "-out", cert)
		args = append(args, "-Y", strconv.Itoa(l.Opts.FTPTLS), "-2", cert+","+key)
	}
	var log lockedBuffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("lab: start pure-ftpd: %v", err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	l.waitListening(h, "tcp:21")
}

// waitListening polls until host h listens on every proto:port given.
func (l *Lab) waitListening(h *Host, want ...string) {
	l.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		out := l.must("ip", "netns", "exec", h.NS, "ss", "-Hlntu")
		missing := ""
		for _, w := range want {
			proto, port, _ := strings.Cut(w, ":")
			if !listensOn(out, proto, port) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("lab: %s does not listen on %s after %v\n%s\nrouter log:\n%s", h.Name, missing, readyTimeout, out, l.RouterLog())
		}
		time.Sleep(pollInterval) // polling a readiness condition, bounded by readyTimeout
	}
}

// listensOn reports whether ss -Hlntu output shows a socket on proto/port.
func listensOn(ss, proto, port string) bool {
	for _, line := range strings.Split(ss, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != proto {
			continue
		}
		if strings.HasSuffix(f[4], ":"+port) {
			return true
		}
	}
	return false
}

func stopProcess(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (l *Lab) close() {
	l.mu.Lock()
	procs := append([]*exec.Cmd{}, l.procs...)
	if l.upnpd != nil {
		procs = append(procs, l.upnpd)
		l.upnpd = nil
	}
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		stopProcess(p)
	}
	for _, h := range l.hosts() {
		// Deleting a namespace ends the processes still inside it only when
		// they exit; kill what is left first.
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		if pids, err := exec.CommandContext(ctx, "ip", "netns", "pids", h.NS).Output(); err == nil {
			for _, pid := range strings.Fields(string(pids)) {
				if n, err := strconv.Atoi(pid); err == nil {
					if p, err := os.FindProcess(n); err == nil {
						_ = p.Kill()
					}
				}
			}
		}
		_ = exec.CommandContext(ctx, "ip", "netns", "del", h.NS).Run()
		cancel()
		_ = os.RemoveAll(filepath.Join("/etc/netns", h.NS)) // only ever this lab's own
	}
	if l.t.Failed() {
		l.t.Logf("lab files kept in %s\nrouter log:\n%s", l.Dir, l.RouterLog())
		return
	}
	_ = os.RemoveAll(l.Dir)
}

// Command returns a command that runs name inside host h, bounded by ctx.
// Its temporary files, and natdoctor's state and lock, stay in h.Tmp: lab
// hosts share nothing with each other, nor with a real natdoctor.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	if h.Tmp != "" {
		cmd.Env = append(os.Environ(), "TMPDIR="+h.Tmp, "NATDOCTOR_STATE_DIR="+h.Tmp, "NATDOCTOR_RUNTIME_DIR="+h.Tmp)
	}
	return cmd
}

// Run runs name inside h, bounded by commandTimeout (a hang guard), and
// returns its combined output and error. An error names the command and
// how long it ran.
func (h *Host) Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	start := time.Now()
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %s on %s: %w after %v", name, strings.Join(args, " "), h.Name, err, time.Since(start).Round(time.Millisecond))
	}
	return string(out), err
}

// MustRun runs name inside h and fails t when it fails.
func (h *Host) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := h.Run(name, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// Forward is one port forward that miniupnpd installed on the router.
type Forward struct {
	Proto    string // tcp or udp
	External int
	Target   string // addr:port
}

var forwardRE = regexp.MustCompile(`@nh,72,8 0x(6|11) th dport (\d+) dnat ip to ([\d.]+:\d+)`)

// Forwards reads the router's miniupnpd DNAT rules: the mappings as the
// kernel sees them, independent of any UPnP client.
func (l *Lab) Forwards(t testing.TB) []Forward {
	t.Helper()
	out := l.Router.MustRun(t, "nft", "list", "chain", "inet", "nat", "prerouting_miniupnpd")
	var fs []Forward
	for _, m := range forwardRE.FindAllStringSubmatch(out, -1) {
		proto := "tcp"
		if m[1] == "11" {
			proto = "udp"
		}
		port, _ := strconv.Atoi(m[2])
		fs = append(fs, Forward{Proto: proto, External: port, Target: m[3]})
	}
	return fs
}

// WaitForwards polls until cond holds for the router's forwards, bounded by
// timeout, and returns the last forwards seen.
func (l *Lab) WaitForwards(t testing.TB, timeout time.Duration, cond func([]Forward) bool) ([]Forward, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		fs := l.Forwards(t)
		if cond(fs) {
			return fs, true
		}
		if time.Now().After(deadline) {
			return fs, false
		}
		time.Sleep(50 * time.Millisecond) // polling router state, bounded by timeout
	}
}
