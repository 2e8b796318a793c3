package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// FTP servers the lab's server host can run (Options.Server).
const (
	PureFTPd = "pure-ftpd" // the default
	// Vsftpd serves anonymous logins only: its local users would be
	// accounts of this machine. Anonymous sessions run as the system user
	// daemon, whose home exists (vsftpd enters it before anon_root).
	Vsftpd    = "vsftpd"
	ProFTPD   = "proftpd"   // the lab's account in its own AuthUserFile
	Pyftpdlib = "pyftpdlib" // Python's pyftpdlib, the lab's account in a DummyAuthorizer
)

// ExtractDir is where lab/install-deps unpacks the Debian packages of FTP
// servers that conflict with pure-ftpd as installed packages (vsftpd,
// ProFTPD): their binaries run from there, side by side.
const ExtractDir = "/opt/natdoctor-lab"

// MaxClients is the session limit every lab server is given: more than the
// 11 passive ports (the field notes' capacity problem).
const MaxClients = 15

// ServerConfig returns the path of the server's configuration file, for
// natdoctor --ftp-config, or "" when its server has none (pure-ftpd runs on
// flags, pyftpdlib on a script).
func (l *Lab) ServerConfig() string { return l.serverConfig }

// Anonymous reports whether clients log in anonymously (vsftpd).
func (l *Lab) Anonymous() bool { return l.Opts.Server == Vsftpd }

// serverHigh is the top of the passive range the server really uses.
func (l *Lab) serverHigh() int {
	if l.Opts.ServerPassiveHigh != 0 {
		return l.Opts.ServerPassiveHigh
	}
	return PassiveHigh
}

// startServerFTP starts the server host's FTP server of Options.Server.
func (l *Lab) startServerFTP() {
	l.t.Helper()
	switch l.Opts.Server {
	case "", PureFTPd:
		l.startFTP(l.Server, ServerAddr, ServerFortune, true)
	case Vsftpd:
		l.startVsftpd()
	case ProFTPD:
		l.startProFTPD()
	case Pyftpdlib:
		l.startPyftpdlib()
	default:
		l.t.Fatalf("lab: unknown FTP server %q", l.Opts.Server)
	}
}

// ftpRoot makes the server's FTP root with the files the judge lists.
func (l *Lab) ftpRoot(owner string) string {
	l.t.Helper()
	root := filepath.Join(l.Dir, "server", "ftproot")
	if err := os.MkdirAll(root, 0o755); err != nil {
		l.t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("file%d.txt", i)), []byte("natdoctor lab file\n"), 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
	l.must("chown", "-R", owner, root)
	return root
}

func (l *Lab) writeServerFile(name, content string) string {
	l.t.Helper()
	p := filepath.Join(l.Dir, "server", name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil { // ProFTPD refuses a world-readable user file
		l.t.Fatal(err)
	}
	return p
}

// runServer starts a server process inside the server host.
func (l *Lab) runServer(name string, args ...string) {
	l.t.Helper()
	var log lockedBuffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.Server.NS, name}, args...)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("lab: start %s: %v", name, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	l.t.Cleanup(func() {
		if l.t.Failed() {
			l.t.Logf("%s output:\n%s", name, log.String())
		}
	})
	l.waitListening(l.Server, "tcp:21")
}

func (l *Lab) startVsftpd() {
	l.t.Helper()
	root := l.ftpRoot("root:root") // vsftpd refuses a root its users could write to
	empty := filepath.Join(l.Dir, "server", "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		l.t.Fatal(err)
	}
	conf := fmt.Sprintf(`listen=YES
listen_ipv6=NO
listen_address=%s
listen_port=21
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=NO
no_anon_password=YES
anon_root=%s
ftp_username=daemon
secure_chroot_dir=%s
pasv_enable=YES
pasv_min_port=%d
pasv_max_port=%d
ftpd_banner=%s (vsftpd)
max_clients=%d
max_per_ip=%d
xferlog_enable=NO
seccomp_sandbox=NO
`, ServerAddr, root, empty, PassiveLow, l.serverHigh(), ServerFortune, MaxClients, MaxClients)
	if l.Opts.ForcePassiveIP {
		conf += "pasv_address=" + l.WAN().String() + "\n"
	}
	l.serverConfig = l.writeServerFile("vsftpd.conf", conf)
	l.runServer(filepath.Join(ExtractDir, "usr/sbin/vsftpd"), l.serverConfig)
}

func (l *Lab) startProFTPD() {
	l.t.Helper()
	root := l.ftpRoot("nobody:nogroup")
	dir := filepath.Join(l.Dir, "server")
	hash := strings.TrimSpace(l.must("openssl", "passwd", "-6", "-salt", "natdoctorlab", FTPPassword))
	l.writeServerFile("ftpd.passwd", fmt.Sprintf("%s:%s:65534:65534::%s:/bin/false\n", FTPUser, hash, root))
	l.writeServerFile("ftpd.group", "nogroup:x:65534:\n")
	reverse, ident := "off", ""
	if l.Opts.ReverseDNS {
		// Reverse lookups in a DNS that never answers, and ident lookups
		// (RFC 1413) of clients whose firewall drops port 113 silently, as
		// home routers do: ProFTPD's two classic late greetings.
		reverse = "on"
		l.deadDNS(l.Server)
		ident = fmt.Sprintf("ModulePath %s\nLoadModule mod_ident.c\nIdentLookups on\n", filepath.Join(ExtractDir, "usr/lib/proftpd"))
		l.Outside.MustRun(l.t, "nft", "add table inet natdoctor_outside")
		l.Outside.MustRun(l.t, "nft", "add chain inet natdoctor_outside input { type filter hook input priority 0 ; policy accept ; }")
		l.Outside.MustRun(l.t, "nft", "add rule inet natdoctor_outside input tcp dport 113 drop")
	}
	conf := fmt.Sprintf(`ServerType standalone
ServerName "natdoctor lab"
ServerIdent on "%s (ProFTPD)"
DefaultAddress %s
SocketBindTight on
UseIPv6 off
Port 21
User nobody
Group nogroup
PidFile %[3]s/proftpd.pid
ScoreboardFile %[3]s/proftpd.scoreboard
DelayTable %[3]s/proftpd.delay
WtmpLog off
TransferLog none
AuthOrder mod_auth_file.c
AuthUserFile %[3]s/ftpd.passwd
AuthGroupFile %[3]s/ftpd.group
AuthPAM off
RequireValidShell off
DefaultRoot ~
PassivePorts %d %d
MaxClients %d
MaxInstances %d
UseReverseDNS %s
%s`, ServerFortune, ServerAddr, dir, PassiveLow, l.serverHigh(), MaxClients, MaxClients+5, reverse, ident)
	if l.Opts.ForcePassiveIP {
		conf += "MasqueradeAddress " + l.WAN().String() + "\n"
	}
	l.serverConfig = l.writeServerFile("proftpd.conf", conf)
	l.runServer(filepath.Join(ExtractDir, "usr/sbin/proftpd"), "-n", "-q", "-c", l.serverConfig)
}

// pyftpdlibServer runs pyftpdlib with the lab's account.
const pyftpdlibServer = `
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
addr, root, user, pw, low, high, masq, banner, maxcons = sys.argv[1:]
auth = DummyAuthorizer()
auth.add_user(user, pw, root, perm="elr")
FTPHandler.authorizer = auth
FTPHandler.passive_ports = range(int(low), int(high) + 1)
FTPHandler.banner = banner
if masq:
    FTPHandler.masquerade_address = masq
server = FTPServer((addr, 21), FTPHandler)
server.max_cons = int(maxcons)
server.serve_forever()
`

func (l *Lab) startPyftpdlib() {
	l.t.Helper()
	root := l.ftpRoot("nobody:nogroup")
	masq := ""
	if l.Opts.ForcePassiveIP {
		masq = l.WAN().String()
	}
	l.runServer(debianPython, "-c", pyftpdlibServer, ServerAddr.String(), root, FTPUser, FTPPassword,
		strconv.Itoa(PassiveLow), strconv.Itoa(l.serverHigh()), masq, ServerFortune+" (pyftpdlib)", strconv.Itoa(MaxClients))
}

// debianPython is Debian's own Python, which sees Debian's python3-pyftpdlib.
const debianPython = "/usr/bin/python3"

// deadDNS makes h's resolver ask the router, which never answers
// (Options.ReverseDNS): a name lookup takes ReverseDNSDelay, then fails.
func (l *Lab) deadDNS(h *Host) {
	l.t.Helper()
	dir := filepath.Join("/etc/netns", h.NS) // ip netns exec mounts it over /etc
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	conf := fmt.Sprintf("nameserver %s\noptions timeout:%d attempts:1\n", RouterLANAddr, int(ReverseDNSDelay.Seconds()))
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
}
