package report

import (
	"fmt"
	"slices"
	"strings"
)

// Finding codes: a public contract, documented in README.
const (
	CodeNoMappingProtocol = "no-mapping-protocol"
	CodeDoubleNAT         = "double-nat"
	CodeMappingMissing    = "mapping-missing"
	CodeMappingWrongHost  = "mapping-wrong-host"
	CodeDefaultHost       = "default-host-override"
	CodeThisHostDefault   = "this-host-is-default-host"
	CodePASVPrivate       = "pasv-private-address"
	CodePASVOutsideRange  = "pasv-outside-range"
	CodePASVUnreachable   = "pasv-port-unreachable"
	CodePASVRangeTooSmall = "pasv-range-too-small"
	CodeNoPassiveRange    = "no-passive-range"
	CodeFTPUnreachable    = "ftp-unreachable"
	CodeFTPLoginFailed    = "ftp-login-failed"
	CodeFTPCleartext      = "ftp-cleartext"
	CodeFTPTLSFailed      = "ftp-tls-failed"
	CodeFTPTLSUntrusted   = "ftp-tls-untrusted"
	CodeFTPNoChroot       = "ftp-no-chroot"
	CodeHairpin           = "hairpin-unsupported"
	CodeLeaseExpiring     = "lease-expiring"
	CodeOutsideOK         = "outside-reachable"
	CodeNotVerified       = "not-verified"
	CodeFTPSlowGreeting   = "ftp-slow-greeting"
)

// Entry is one finding code of the catalogue, at one severity: the row of
// README's "Finding codes" table. A code with two severities (an error, or
// a warning when the session went on) has two entries.
type Entry struct {
	Code     string
	Severity Severity
	Example  string // an example summary, as README shows it
	Fix      string // the fix in short
}

// Catalogue lists every finding diagnose can report, in README's order.
// README's table is made from it (TestREADMECodeTable keeps the two equal)
// and diagnose --help names its codes; a finding outside it is a bug
// (Catalogued).
var Catalogue = []Entry{
	{CodeNoMappingProtocol, SevError,
		"the router 10.0.1.1 answers none of NAT-PMP, PCP and UPnP IGD",
		"enable UPnP/NAT-PMP, or forward by hand"},
	{CodeDoubleNAT, SevError,
		"double NAT: the router's external address 100.64.0.1 is shared",
		"bridge mode upstream, or ask for a public IPv4"},
	{CodeMappingMissing, SevError,
		"passive ports not mapped: TCP 42006-42010",
		"`natdoctor add 21 42000-42010`"},
	{CodeMappingWrongHost, SevError,
		"2 of the server's ports are mapped to another LAN address, not 10.0.1.2",
		"`natdoctor add 21 42000-42010 --force`"},
	{CodeDefaultHost, SevError,
		"from outside, mapped ports reach another machine than this server: a default host (DMZ) overrides the port mappings",
		"turn Default Host / DMZ off (the router's own menu is named)"},
	{CodeThisHostDefault, SevWarning,
		"this host is the router's default host (DMZ): every port of it is exposed",
		"map the ports first (it names those only the default host carries), then turn the default host off"},
	{CodePASVPrivate, SevWarning,
		"the server advertises its private address 10.0.1.2 in PASV replies",
		"Pure-FTPd `ForcePassiveIP`, vsftpd `pasv_address`, ProFTPD `MasqueradeAddress`"},
	{CodePASVOutsideRange, SevError,
		"the server hands out passive port 50123, outside the mapped range 42000-42010",
		"set the server's passive range"},
	{CodePASVUnreachable, SevError,
		"from outside, passive ports 42006-42010 do not reach this server",
		"map them (a port lost between two rules looks like this)"},
	{CodePASVRangeTooSmall, SevWarning,
		"the passive range 42000-42010 has 11 ports for up to 15 sessions",
		"widen to 2 × sessions, or lower the limit"},
	{CodeNoPassiveRange, SevError,
		"Pure-FTPd has no passive port range: it may pick any port from 1024 to 65535",
		"set a small range and map exactly it"},
	{CodeNoPassiveRange, SevWarning,
		"/etc/pure-ftpd/conf says Pure-FTPd has no passive port range, but the running server hands out 42000-42010",
		"write the range the server was started with into its configuration"},
	{CodeFTPUnreachable, SevError,
		"from outside, 11.0.0.1:21 does not answer: timed out",
		"map the control port / start the server"},
	{CodeFTPLoginFailed, SevError,
		"login fails from outside (530) because port 21 reaches another machine, not a wrong password",
		"see `default-host-override` — or check the password when the same server refuses it"},
	{CodeFTPSlowGreeting, SevWarning,
		"the server greets 7.0 s after accepting a connection (from outside)",
		"Pure-FTPd `DontResolve yes`; vsftpd `reverse_lookup_enable=NO`; ProFTPD `UseReverseDNS off`, `IdentLookups off`"},
	{CodeFTPCleartext, SevWarning,
		"the server offers no AUTH TLS: passwords cross the internet in clear text",
		"enable FTPS"},
	{CodeFTPTLSFailed, SevError,
		"FTPS does not work: TLS handshake: remote error: tls: internal error",
		"check the server's certificate and key, or stop offering TLS"},
	{CodeFTPTLSFailed, SevWarning,
		"the server lists AUTH TLS but refuses it: AUTH TLS answered 500 (Debian's Pure-FTPd with TLS off)",
		"turn TLS on with a certificate"},
	{CodeFTPNoChroot, SevWarning,
		"logged-in users can leave their home /Users/alice: CWD /etc works, the whole disk is browsable",
		"Pure-FTPd `ChrootEveryone yes`, vsftpd `chroot_local_user=YES`, ProFTPD `DefaultRoot ~`"},
	{CodeFTPTLSUntrusted, SevInfo,
		"the server's TLS certificate is not trusted here: clients will ask to accept it",
		"a CA certificate for the name clients use, or hand out the fingerprint"},
	{CodeHairpin, SevInfo,
		"the router does not loop connections to its public address back to the LAN",
		"informational; check from outside with a reflector"},
	{CodeLeaseExpiring, SevInfo,
		"mappings of TCP 21, 42000-42010 have finite leases and lapse unless renewed",
		"`natdoctor keep 21 42000-42010`"},
	{CodeOutsideOK, SevOK,
		"from outside, 11.0.0.1:21 reaches this server",
		"—"},
	{CodeNotVerified, SevError,
		"nothing that was checked shows the server reachable from outside",
		"run with `--reflector URL` (and `--gateway IP` without a default route)"},
}

// Catalogued reports whether f's code and severity are in the catalogue.
func Catalogued(f Finding) bool {
	return slices.ContainsFunc(Catalogue, func(e Entry) bool { return e.Code == f.Code && e.Severity == f.Severity })
}

// Codes returns the catalogue's codes, each once, in its order.
func Codes() []string {
	var codes []string
	for _, e := range Catalogue {
		if !slices.Contains(codes, e.Code) {
			codes = append(codes, e.Code)
		}
	}
	return codes
}

// CodeTable renders the catalogue as README's Markdown table.
func CodeTable() string {
	var b strings.Builder
	b.WriteString("| code | severity | example summary | fix in short |\n|---|---|---|---|\n")
	for _, e := range Catalogue {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", e.Code, e.Severity, e.Example, e.Fix)
	}
	return b.String()
}
