package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// Finding codes of these rules: a public contract, documented in README.
const (
	CodePASVPrivate       = "pasv-private-address"
	CodePASVOutsideRange  = "pasv-outside-range"
	CodePASVRangeTooSmall = "pasv-range-too-small"
	CodeNoPassiveRange    = "no-passive-range"
	CodeFTPUnreachable    = "ftp-unreachable"
	CodeFTPLoginFailed    = "ftp-login-failed"
	CodeFTPSlowGreeting   = "ftp-slow-greeting"
	CodeFTPListFailed     = "ftp-list-failed"
	CodeFTPCleartext      = "ftp-cleartext"
	CodeFTPTLSFailed      = "ftp-tls-failed"
	CodeFTPNoChroot       = "ftp-no-chroot"
	CodeFTPTLSUntrusted   = "ftp-tls-untrusted"
)

var _ = catalogue([]Entry{
	{Code: CodePASVPrivate, Severity: SevWarning,
		Example: "the server advertises its private address 10.0.1.2 in PASV replies",
		Fix:     "Pure-FTPd `ForcePassiveIP`, vsftpd `pasv_address`, ProFTPD `MasqueradeAddress`"},
	{Code: CodePASVOutsideRange, Severity: SevError,
		Example: "the server hands out passive port 50123, outside the mapped range 42000-42010",
		Fix:     "set the server's passive range",
		After:   []string{CodeNoPassiveRange}},
	{Code: CodePASVRangeTooSmall, Severity: SevWarning,
		Example: "the passive range 42000-42010 has 11 ports for up to 15 sessions",
		Fix:     "widen to 2 × sessions, or lower the limit"},
	{Code: CodeNoPassiveRange, Severity: SevError,
		Example: "Pure-FTPd has no passive port range: it may pick any port from 1024 to 65535",
		Fix:     "set a small range and map exactly it"},
	{Code: CodeNoPassiveRange, Severity: SevWarning,
		Example: "/etc/pure-ftpd/conf says Pure-FTPd has no passive port range, but the running server hands out 42000-42010",
		Fix:     "write the range the server was started with into its configuration"},
	{Code: CodeFTPUnreachable, Severity: SevError,
		Example: "from outside, 11.0.0.1:21 does not answer: timed out",
		Fix:     "map the control port / start the server",
		After:   []string{CodeNoMappingProtocol, CodeDoubleNAT, CodeDefaultHost, CodeMappingWrongHost, CodeMappingMissing}},
	{Code: CodeFTPLoginFailed, Severity: SevError,
		Example: "login fails from outside (530) because port 21 reaches another machine, not a wrong password",
		Fix:     "see `default-host-override` — or check the password when the same server refuses it",
		After:   []string{CodeDefaultHost, CodeMappingWrongHost, CodeFTPUnreachable, CodeFTPTLSFailed}},
	{Code: CodeFTPSlowGreeting, Severity: SevWarning,
		Example: "the server greets 7.0 s after accepting a connection (from outside)",
		Fix:     "Pure-FTPd `DontResolve yes`; vsftpd `reverse_lookup_enable=NO`; ProFTPD `UseReverseDNS off`, `IdentLookups off`"},
	{Code: CodeFTPCleartext, Severity: SevWarning,
		Example: "the server offers no AUTH TLS: passwords cross the internet in clear text",
		Fix:     "enable FTPS"},
	{Code: CodeFTPTLSFailed, Severity: SevError,
		Example: "FTPS does not work: TLS handshake: remote error: tls: internal error",
		Fix:     "check the server's certificate and key, or stop offering TLS"},
	{Code: CodeFTPTLSFailed, Severity: SevWarning,
		Example: "the server lists AUTH TLS but refuses it: AUTH TLS answered 500 (Debian's Pure-FTPd with TLS off)",
		Fix:     "turn TLS on with a certificate"},
	{Code: CodeFTPListFailed, Severity: SevError,
		Example: "logged in on the LAN, but no listing arrives: LIST answered 550",
		Fix:     "passive mode on; the account may read its home",
		After:   []string{CodePASVUnreachable, CodePASVOutsideRange, CodeFTPTLSFailed}},
	{Code: CodeFTPNoChroot, Severity: SevWarning,
		Example: "logged-in users can leave their home /Users/alice: CWD /etc works, the whole disk is browsable",
		Fix:     "Pure-FTPd `ChrootEveryone yes`, vsftpd `chroot_local_user=YES`, ProFTPD `DefaultRoot ~`"},
	{Code: CodeFTPTLSUntrusted, Severity: SevInfo,
		Example: "the server's TLS certificate is not trusted here: clients will ask to accept it",
		Fix:     "a CA certificate for the name clients use, or hand out the fingerprint"},
})

// server judges the FTP walk on the LAN: reachable, greeting, TLS,
// login, confinement, the advertised passive address.
func (b *builder) server() {
	o := b.o
	in := o.Inside
	if in == nil {
		b.skip("lan-ftp", "FTP server on the LAN: not probed")
		return
	}
	if !b.reached(in) {
		return
	}
	b.greeting(in)
	if in.AuthTLS == probe.Failed {
		b.add(Finding{
			Code: CodeFTPCleartext, Severity: SevWarning,
			Summary:     "the server offers no AUTH TLS: passwords cross the internet in clear text",
			Evidence:    map[string]any{"features": in.Features},
			Explanation: "Plain FTP sends the user name and password unencrypted; anyone on the path can read them.",
			Fix:         "Enable TLS (Pure-FTPd: TLS 1 with a certificate; vsftpd: ssl_enable=YES; ProFTPD: mod_tls) and tell users to connect with explicit FTPS.",
		})
	}
	b.tls(in)
	b.login(in)
	if in.Confined == probe.Failed {
		b.add(Finding{
			Code: CodeFTPNoChroot, Severity: SevWarning,
			Summary:     fmt.Sprintf("logged-in users can leave their home %s: CWD %s works, the whole disk is browsable", in.Home, in.EscapedTo),
			Evidence:    map[string]any{"home": in.Home, "reached": in.EscapedTo, "user": in.LoginUser},
			Explanation: "Without a chroot (\"default root\"), anyone who logs in, or guesses a password, can read every file the account may read, system files included.",
			Fix:         noChrootFix(o),
		})
	}
	b.pasvPrivate(in)
	b.outsideRange(in)
	b.listFailed(in)
	b.lanDeadPorts(in)
}

// reached reports an FTP server that does not answer; it says whether it did.
func (b *builder) reached(in *probe.FTPResult) bool {
	o := b.o
	if in.Reached != probe.OK {
		f := Finding{
			Code: CodeFTPUnreachable, Severity: SevError, root: b.walkFrom == "",
			Summary:     fmt.Sprintf("the FTP server %s does not answer %s: %s", in.Target, b.where(), in.ReachErr),
			Evidence:    map[string]any{"target": in.Target, "error": in.ReachErr, "banner": in.Banner},
			Explanation: "If the server does not answer inside the network, nothing outside can reach it either.",
			Fix:         "Start the FTP server, check that it listens on this address and port, and that the host firewall lets port " + fmt.Sprint(o.FTPPort) + " in.",
		}
		if b.walkFrom != "" {
			f.Explanation = "No FTP session can start: nothing answers there, or something drops the connection."
			f.Fix = "Start the FTP server and check that it listens on that port; from outside, map the port to the server: natdoctor add " + fmt.Sprint(o.FTPPort) + "."
		}
		if in.GreetingDelay >= probe.GreetingTimeout {
			f.Explanation = "Something accepted the connection but said nothing for as long as clients wait: a server stuck looking up the client's name in a DNS server that does not answer, or one at its session limit."
			f.Fix = reverseDNSFix(o) + " Check the server's log, and its session limit."
		}
		b.add(f)
		return false
	}
	return true
}

// greeting reports a server that greets late (on the LAN or from outside).
func (b *builder) greeting(in *probe.FTPResult) {
	o := b.o
	greet, where := in.GreetingDelay, b.where()
	if out := o.Outside; out != nil && out.Outside != nil && out.Outside.Reached == probe.OK && out.Outside.GreetingDelay > greet {
		// Only strangers may wait: ident lookups to a LAN client are refused at once.
		greet, where = out.Outside.GreetingDelay, "from outside"
	}
	if greet >= probe.SlowGreeting {
		b.add(Finding{
			Code: CodeFTPSlowGreeting, Severity: SevWarning,
			Summary: fmt.Sprintf("the server greets %.1f s after accepting a connection (%s)", greet.Seconds(), where),
			Evidence: map[string]any{"greeting_delay": greet.Round(100 * time.Millisecond).String(), "seen_from": where, "banner": in.Banner,
				"clients_wait": probe.GreetingTimeout.String()},
			Explanation: "Every login waits that long. The usual cause is the server looking up each client's name (reverse DNS) in a DNS server that does not answer. " +
				"Clients wait " + probe.GreetingTimeout.String() + " (FileZilla, lftp), so they get in now; a slower DNS, or a client with a short timeout, fails as if the server were down.",
			Fix: reverseDNSFix(o),
		})
	}
}

// login reports a login refused on the LAN, or says why none was tried.
func (b *builder) login(in *probe.FTPResult) {
	o := b.o
	if in.Login == probe.Skipped && in.TLS != nil && in.TLS.Status != probe.OK && !in.TLS.PlainAfter {
		b.skip("login", "login: not tried, because FTPS failed")
	} else if in.Login == probe.Skipped {
		b.skip("login", "login: no credentials given (--user with --password-env or --password-file)")
	} else if in.Login != probe.OK && (o.Outside == nil || o.Outside.Outside == nil) {
		b.add(loginFailed(in, false, b.where()))
	}
}

// pasvPrivate reports a PASV reply with an address clients outside cannot reach.
func (b *builder) pasvPrivate(in *probe.FTPResult) {
	o := b.o
	if p := in.PASV; p != nil && p.ParseError == "" {
		switch p.AddrClass {
		case "private", "loopback", "unspecified", "link-local", "shared":
			forced := ""
			if o.Config != nil {
				forced = o.Config.ForcedAddr
			}
			ext := ""
			if o.Discovery != nil {
				ext = addrOrEmpty(o.Discovery.ExternalAddr())
			}
			explain := "Behind NAT, a client outside cannot reach that address. Some clients notice and use the server's public address instead; " +
				"strict ones (and many Windows clients) then log in but cannot list files."
			if in.TLS != nil && in.TLS.Status == probe.OK {
				explain += " Over FTPS the router cannot read the PASV reply to rewrite it (some routers' FTP helpers do that for plain FTP), " +
					"so only the server's own setting fixes it: this is why plain FTP may work where FTPS fails."
			}
			b.add(Finding{
				Code: CodePASVPrivate, Severity: SevWarning,
				Summary:     fmt.Sprintf("the server advertises its %s address %s in PASV replies", p.AddrClass, p.Addr.Addr()),
				Evidence:    omitEmpty(map[string]any{"reply": p.Reply, "forced_address_configured": forced, "router_external_address": ext}),
				Explanation: explain,
				Fix:         forcedAddrFix(o, ext),
			})
		}
	}
}

// lanDeadPorts reports passive ports that do not open, when nothing from
// outside checked them.
func (b *builder) lanDeadPorts(in *probe.FTPResult) {
	o := b.o
	if dead := in.DeadPorts(); len(dead) > 0 && (o.Outside == nil || len(o.Outside.Passive) == 0) {
		f := Finding{
			Code: CodePASVUnreachable, Severity: SevError,
			Summary:     fmt.Sprintf("passive ports %s do not carry a data connection", nat.CompressPorts(dead)),
			Evidence:    map[string]any{"ports": nat.CompressPorts(dead), "seen_from": strings.TrimPrefix(b.where(), "on ")},
			Explanation: "Even on the LAN, these passive ports do not accept a connection: a host firewall blocks them.",
			Fix:         "Open the passive range in the server's firewall.",
		}
		if b.walkFrom != "" {
			f.Explanation = "Listings and transfers fail whenever the server picks one of these ports. Seen from outside, a port forgotten between two router rules looks exactly like this; on the LAN, a host firewall."
			f.Fix = "Map them (natdoctor add " + nat.CompressPorts(dead) + ") and open them in the server's firewall."
		}
		b.add(f)
	}
}

// listFailed reports a session that logged in but got no listing, where
// no dead passive port explains it: the server refused passive mode, or
// the LIST itself.
func (b *builder) listFailed(in *probe.FTPResult) {
	if in.Login != probe.OK || in.List != probe.Failed || len(in.DeadPorts()) > 0 {
		return
	}
	var refused, failed []string
	for _, p := range []*probe.Passive{in.PASV, in.EPSV} {
		if p != nil && p.ParseError != "" {
			refused = append(refused, p.ParseError)
		}
	}
	for _, d := range in.Data {
		if d.Connected && !d.Listed {
			failed = append(failed, fmt.Sprintf("%s (%s): %s", d.Addr, d.Via, d.Error))
		}
	}
	f := Finding{
		Code: CodeFTPListFailed, Severity: SevError,
		Evidence: omitEmpty(map[string]any{"user": in.LoginUser, "passive_refused": strings.Join(refused, "; "),
			"data_connections": strings.Join(failed, "; "), "seen_from": b.where()}),
	}
	if len(failed) == 0 {
		why := "the server refuses passive mode"
		if len(refused) > 0 {
			why += " (" + refused[0] + ")"
		}
		f.Summary = fmt.Sprintf("logged in %s, but no listing arrives: %s", b.where(), why)
		f.Explanation = "Clients log in, then fail at the directory listing (FileZilla: \"Failed to retrieve directory listing\"). " +
			"Behind NAT clients must use passive mode: active mode needs the server to connect out to each client, which the client's router blocks."
		f.Fix = "Turn passive mode on in the server (vsftpd: pasv_enable=YES; Pure-FTPd: do not start it with -k or ActiveOnly), with a passive port range, and map that range."
	} else {
		f.Summary = fmt.Sprintf("logged in %s, but no listing arrives: %s", b.where(), failed[0])
		f.Explanation = "The data connection opens, then the server does not send the listing: it refuses LIST (550: the account may not read its home directory), " +
			"or the transfer breaks off. Clients log in and then fail at the directory listing."
		f.Fix = "Check that the account may read its home directory " + orHome(in.Home) + " (owner and permissions), and the server's log for the LIST."
	}
	b.add(f)
}

func orHome(home string) string {
	if home == "" {
		return ""
	}
	return "(" + home + ")"
}

// outsideRange reports passive ports the server handed out, in any of the
// walk's replies, outside the range the router maps.
func (b *builder) outsideRange(in *probe.FTPResult) {
	o := b.o
	if o.Passive == nil || strings.HasPrefix(o.PassiveSource, SourcePASVReplies) {
		return
	}
	handed := in.HandedOut()
	var outside []uint16
	for _, p := range handed {
		if !o.Passive.Contains(p) {
			outside = append(outside, p)
		}
	}
	if len(outside) == 0 {
		return
	}
	seen := probe.PortRange{Low: handed[0], High: handed[len(handed)-1]}
	b.add(Finding{
		Code: CodePASVOutsideRange, Severity: SevError,
		Summary: fmt.Sprintf("the server hands out passive ports outside the mapped range %s: %s (%d of %d replies)",
			o.Passive, nat.CompressPorts(outside), len(outside), in.Replies()),
		Evidence: map[string]any{"expected": o.Passive.String(), "outside": nat.CompressPorts(outside), "handed_out": seen.String(),
			"replies": in.Replies()},
		Explanation: "Data connections go to a port the router does not forward: listings and transfers fail whenever the server picks one. " +
			"The server's range is not the one that is mapped (it uses at least " + seen.String() + ").",
		Fix: passiveRangeFix(o, *o.Passive) + " Or map the range the server uses: natdoctor add " + seen.String() + ".",
	})
}

// tls reports FTPS that fails, and a certificate clients will question.
func (b *builder) tls(in *probe.FTPResult) {
	t := in.TLS
	if t == nil {
		return
	}
	if t.Status != probe.OK {
		f := Finding{
			Code: CodeFTPTLSFailed, Severity: SevError,
			Summary:  "FTPS does not work: " + t.Error,
			Evidence: map[string]any{"error": t.Error},
			Explanation: "The server offers AUTH TLS (or TLS was required), but the TLS session could not be set up. " +
				"Clients set to use explicit FTP over TLS, FileZilla's default when the server offers it, fail right after connecting.",
			Fix: "Check the server's TLS certificate and key (Pure-FTPd: /etc/ssl/private/pure-ftpd.pem, or the file given with -2/CertFile) " +
				"and its TLS setting; or stop offering TLS until it works.",
		}
		if t.PlainAfter || in.Login != probe.Skipped || in.LoginUser != "" {
			// AUTH TLS refused, and the session went on in plain text.
			f.Severity = SevWarning
			f.Summary = "the server lists AUTH TLS but refuses it: " + t.Error
			f.Explanation = "Clients that insist on TLS cannot connect, and the others send the password in clear text. " +
				"(Debian's Pure-FTPd lists AUTH TLS in FEAT even with TLS off.)"
			f.Fix = "Turn TLS on with a certificate (Pure-FTPd: TLS 1 and /etc/ssl/private/pure-ftpd.pem), then tell users to use explicit FTPS."
		}
		b.add(f)
		return
	}
	if !t.Trusted {
		b.add(Finding{
			Code: CodeFTPTLSUntrusted, Severity: SevInfo,
			Summary: "the server's TLS certificate is not trusted here: clients will ask to accept it",
			Evidence: omitEmpty(map[string]any{"subject": t.Subject, "issuer": t.Issuer, "not_after": t.NotAfter.Format("2006-01-02"),
				"sha256": t.Fingerprint, "error": t.TrustError}),
			Explanation: "A self-signed or expired certificate, or one for another name, still encrypts the session, " +
				"but each client shows a warning the first time; users who refuse it cannot log in.",
			Fix: "Use a certificate from a public CA for the name clients connect to (e.g. Let's Encrypt), " +
				"or give users the SHA-256 fingerprint above to compare before they accept it.",
		})
	}
}

func loginFailed(r *probe.FTPResult, otherMachine bool, where string) Finding {
	f := Finding{
		Code: CodeFTPLoginFailed, Severity: SevError,
		Evidence: map[string]any{"user": r.LoginUser, "code": r.LoginCode, "reply": r.LoginText, "banner": r.Banner, "seen_from": where},
	}
	if otherMachine {
		f.Summary = fmt.Sprintf("login fails from outside (%d) because port %s reaches another machine, not a wrong password", r.LoginCode, portOf(r.Target))
		f.Explanation = "The same credentials work on the LAN. From outside, the connection lands on another machine, which does not know the account: to the user it looks like \"my password is wrong\"."
		f.Fix = "Make port " + portOf(r.Target) + " from outside reach this server."
		return f
	}
	if probe.TLSRequired(r.LoginCode, r.LoginText) && (r.TLS == nil || r.TLS.Status != probe.OK) {
		f.Summary = fmt.Sprintf("login as %s refused %s (%d): the server accepts logins over TLS only", r.LoginUser, where, r.LoginCode)
		f.Explanation = "The server refuses plain-text logins. Clients that do not use explicit FTP over TLS are turned away before the password is checked: " +
			"to the user it looks like a wrong password."
		f.Fix = "Connect with explicit FTP over TLS (FTPS; natdoctor: --tls auto or require), or let the server accept plain logins (Pure-FTPd: TLS 1 instead of 2)."
		return f
	}
	f.Summary = fmt.Sprintf("login as %s refused %s (%d): wrong user name or password", r.LoginUser, where, r.LoginCode)
	f.Explanation = "The server itself refuses the credentials."
	f.Fix = "Check the user name and password, and that the account may log in (for Pure-FTPd: pure-pw show USER; run pure-pw mkdb after changes)."
	return f
}

func portOf(target string) string {
	t := strings.TrimSuffix(target, " (from outside)")
	if i := strings.LastIndexByte(t, ':'); i >= 0 {
		return t[i+1:]
	}
	return "21"
}

// config judges the server's passive range against its configuration and
// its session limits.
func (b *builder) config() {
	o := b.o
	c := o.Config
	if c != nil && o.Inside != nil && o.Inside.Software != "" && c.Server != "" && !strings.EqualFold(c.Server, o.Inside.Software) {
		// A host with several servers installed: the file found is not the
		// answering server's, and what it says does not apply.
		b.skip("server-config", fmt.Sprintf("server configuration: %s is %s's, but the server that answers is %s (give --ftp-config)", c.Source, c.Server, o.Inside.Software))
		return
	}
	if c == nil {
		if o.Passive == nil {
			b.skip("server-config", "server configuration: no passive range known (give --pasv or --ftp-config)")
		}
		return
	}
	if c.PassiveOff {
		return
	}
	if lr, ok := probe.LearnRange(o.Inside); c.Passive == nil && ok {
		// The file says none, the running server behaves as if it had one:
		// it was started with other settings. Say which source says what.
		b.add(Finding{
			Code: CodeNoPassiveRange, Severity: SevWarning,
			Summary: fmt.Sprintf("%s says %s has no passive port range, but the running server hands out %s", c.Source, c.Server, lr),
			Evidence: map[string]any{"config": c.Source, "config_says": "no range (1024-65535)", "server_hands_out": lr.String(),
				"replies": o.Inside.Replies()},
			Explanation: fmt.Sprintf("The running server was started with settings this file does not have (command-line flags, another file). "+
				"%d of its passive replies all fell in %s, which a server without a range would not do. natdoctor checks the range the server uses; "+
				"the file will apply at the next restart.", o.Inside.Replies(), lr),
			Fix: "Write the range the running server was started with (its replies show at least " + lr.String() + ") into " + c.Source +
				", so that a restart keeps it, and map exactly that range.",
		})
		return
	}
	if c.Passive == nil {
		b.add(Finding{
			Code: CodeNoPassiveRange, Severity: SevError,
			Summary:  fmt.Sprintf("%s has no passive port range: it may pick any port from 1024 to 65535", c.Server),
			Evidence: map[string]any{"config": c.Source},
			Explanation: "In passive mode the data connection goes to a port the server picks. Without a fixed range, every port 1024-65535 would have to be mapped " +
				"— as good as no firewall. The operating system's built-in servers often cannot restrict it at all.",
			Fix: "Set a small range and map exactly it: Pure-FTPd `PassivePortRange 42000 42010`; vsftpd pasv_min_port/pasv_max_port; ProFTPD PassivePorts. Then: natdoctor add 21 42000-42010",
		})
		return
	}
	size := c.Passive.Size()
	if c.MaxClients > size {
		rec := probe.RecommendedPassivePorts(c.MaxClients)
		b.add(Finding{
			Code: CodePASVRangeTooSmall, Severity: SevWarning,
			Summary: fmt.Sprintf("the passive range %s has %d ports for up to %d sessions", c.Passive, size, c.MaxClients),
			Evidence: map[string]any{"passive_range": c.Passive.String(), "ports": size, "max_clients": c.MaxClients,
				"max_per_ip": c.MaxPerIP, "recommended_ports": rec},
			Explanation: fmt.Sprintf("Each session with a listing or transfer under way holds one passive port. %d sessions are allowed, but only %d ports exist: "+
				"under load the %dth transfer fails. Clients open 3-4 sessions each, so %d ports serve only about %d people at once.",
				c.MaxClients, size, size+1, size, max(1, size/4)),
			Fix: fmt.Sprintf("Widen the passive range to at least %d ports (e.g. %d-%d) and map it, or lower the session limit.",
				rec, c.Passive.Low, int(c.Passive.Low)+rec-1),
		})
	}
}

func rangeSize(r *probe.PortRange) int {
	if r == nil {
		return 0
	}
	return r.Size()
}
