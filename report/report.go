package report

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// SourcePASVReplies starts Observations.PassiveSource when the passive
// range was learned from the server's replies, not given or configured.
const SourcePASVReplies = "learned"

// Schema names the JSON document's version.
const Schema = "natdoctor.diagnose/v1"

// Severity ranks a finding.
type Severity string

// Severities, worst first.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
	SevInfo    Severity = "info"
	SevOK      Severity = "ok"
)

func (s Severity) rank() int {
	return map[Severity]int{SevError: 0, SevWarning: 1, SevInfo: 2, SevOK: 3}[s]
}

// Finding is one thing diagnose found.
type Finding struct {
	Code        string         `json:"code"`
	Severity    Severity       `json:"severity"`
	Summary     string         `json:"summary"`
	Evidence    map[string]any `json:"evidence,omitempty"`
	Explanation string         `json:"explanation,omitempty"`
	Fix         string         `json:"fix,omitempty"`
}

// Hop is one step of the path a connection from outside takes.
type Hop struct {
	Name   string       `json:"name"`
	Status probe.Status `json:"status"` // ok, failed, skipped
	Detail string       `json:"detail,omitempty"`
}

// Observations are what nat and probe saw; report turns them into findings.
type Observations struct {
	Discovery    *nat.Discovery `json:"discovery,omitempty"`
	DiscoveryErr string         `json:"discovery_error,omitempty"`
	Server       netip.Addr     `json:"server"`
	FTPPort      uint16         `json:"ftp_port"`
	// PublicPort is the router's external port for the control
	// connection, when it is not FTPPort (a router that refuses ports
	// below 1024: 2121 -> 21).
	PublicPort    uint16           `json:"public_port,omitempty"`
	Passive       *probe.PortRange `json:"passive_range,omitempty"`
	PassiveSource string           `json:"passive_range_source,omitempty"`
	Config        *probe.FTPConfig `json:"ftp_config,omitempty"`
	Mappings      []nat.Mapping    `json:"mappings,omitempty"`
	MappingsKnown bool             `json:"mappings_known"`
	MappingsErr   string           `json:"mappings_error,omitempty"`
	// MappingsNotAsked are needed ports the router was not asked about,
	// and why: Mappings says nothing of them.
	MappingsNotAsked *NotAsked            `json:"mappings_not_asked,omitempty"`
	Inside           *probe.FTPResult     `json:"inside,omitempty"`
	Outside          *probe.OutsideResult `json:"outside,omitempty"`
	Reflector        string               `json:"reflector,omitempty"`
	Hairpin          *probe.FTPResult     `json:"hairpin,omitempty"`
	HairpinStatus    probe.Status         `json:"hairpin_status,omitempty"`
	Credentials      bool                 `json:"credentials_given"`
	Elapsed          time.Duration        `json:"elapsed_ns"`
}

// NotAsked names ports a check left out on purpose, and why.
type NotAsked struct {
	Ports []uint16 `json:"ports"`
	Why   string   `json:"why"`
}

// Unchecked is a check that did not run.
type Unchecked struct {
	Check string `json:"check"` // router, mappings, passive-mappings, lan-ftp, login, outside, outside-control-port, outside-passive-ports, outside-default-host, server-config
	Why   string `json:"why"`
}

// Report is the outcome of diagnose.
type Report struct {
	Schema     string    `json:"schema"`
	Verdict    string    `json:"verdict"`
	Healthy    bool      `json:"healthy"`
	Findings   []Finding `json:"findings"`
	Path       []Hop     `json:"path"`
	NotChecked []string  `json:"not_checked"`
	// Unchecked holds the same items typed: which check, and why.
	Unchecked    []Unchecked   `json:"not_checked_items"`
	Observations *Observations `json:"observations"`
}

// HasErrors reports whether any finding is an error.
func (r *Report) HasErrors() bool {
	for _, f := range r.Findings {
		if f.Severity == SevError {
			return true
		}
	}
	return false
}

// Build turns observations into a report.
func Build(o *Observations) *Report {
	r := &Report{Schema: Schema, Observations: o, Findings: []Finding{}, NotChecked: []string{}}
	var b builder
	b.o = o
	b.router()
	b.mappings()
	b.server()
	b.outside()
	b.config()
	if !b.hasErrors() && !verified(o) {
		b.add(notVerified(o))
	}
	r.Findings = b.findings
	r.NotChecked = append(r.NotChecked, b.notChecked...)
	r.Unchecked = append([]Unchecked{}, b.unchecked...)
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Severity != b.Severity {
			return a.Severity.rank() < b.Severity.rank()
		}
		return priority(a) < priority(b)
	})
	r.Path = path(o)
	r.Healthy = !r.HasErrors()
	r.Verdict = verdict(r)
	if onBuild != nil {
		onBuild(r)
	}
	return r
}

// RouterFindings judges a discovery alone, with the rules diagnose uses:
// no mapping protocol, double NAT. discover shows them.
func RouterFindings(d *nat.Discovery) []Finding {
	b := builder{o: &Observations{Discovery: d}}
	b.router()
	if onBuild != nil {
		onBuild(&Report{Findings: b.findings})
	}
	return append([]Finding{}, b.findings...)
}

// onBuild, set by the tests, sees every report Build makes.
var onBuild func(*Report)

// causeOrder puts root causes before their symptoms.
// A server that does not answer on the LAN comes first (nothing else can
// work); one that does not answer from outside after the mapping findings
// that explain it.
var causeOrder = []string{lanUnreachable, CodeNoMappingProtocol, CodeDoubleNAT, CodeDefaultHost, CodeMappingWrongHost,
	CodeMappingMissing, CodeFTPUnreachable, CodeNoPassiveRange, CodePASVOutsideRange, CodePASVUnreachable, CodeFTPTLSFailed, CodeFTPLoginFailed}

// lanUnreachable orders ftp-unreachable on the LAN apart from outside.
const lanUnreachable = "ftp-unreachable (LAN)"

func priority(f Finding) int {
	code := f.Code
	if _, outside := f.Evidence["public_address"]; code == CodeFTPUnreachable && !outside {
		code = lanUnreachable
	}
	if i := slices.Index(causeOrder, code); i >= 0 {
		return i
	}
	return len(causeOrder)
}

func verdict(r *Report) string {
	var errs, warns []Finding
	for _, f := range r.Findings {
		switch f.Severity {
		case SevError:
			errs = append(errs, f)
		case SevWarning:
			warns = append(warns, f)
		}
	}
	switch {
	case len(errs) == 1:
		return "1 problem: " + errs[0].Summary
	case len(errs) > 1:
		return fmt.Sprintf("%d problems; first: %s", len(errs), errs[0].Summary)
	}
	// No error means verified (Build adds not-verified otherwise).
	v := "healthy: the server is reachable from outside"
	if o := r.Observations; o == nil || o.Outside == nil || o.Outside.Outside == nil || o.Outside.Outside.Reached != probe.OK {
		v = "healthy as far as the router tells: every port is mapped to the server, which answers (not checked from outside)"
	}
	if len(warns) > 0 {
		v += ", with " + plural(len(warns), "warning")
	}
	if len(r.NotChecked) > 0 {
		v += fmt.Sprintf(" (%s not run)", plural(len(r.NotChecked), "check"))
	}
	return v
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

type builder struct {
	o          *Observations
	findings   []Finding
	notChecked []string
	unchecked  []Unchecked
	// unmappedButDefault are needed ports that are not mapped but reach
	// this server anyway, because it is the router's default host.
	unmappedButDefault []uint16
	// controlElsewhere: the listing maps the control port to another host.
	controlElsewhere bool
}

// thisHostIsDefault reports whether the canary proved this host to be the
// router's default host.
func (o *Observations) thisHostIsDefault() bool {
	return o.Outside != nil && o.Outside.Canary != nil && o.Outside.Canary.ThisHostIsDefault == probe.OK
}

func (b *builder) add(f Finding) { b.findings = append(b.findings, f) }

func (b *builder) hasErrors() bool {
	return slices.ContainsFunc(b.findings, func(f Finding) bool { return f.Severity == SevError })
}

// verified reports whether some check shows the server reachable from
// outside: the reflector's walk, or the router mapping every needed port
// to a server that answers on the LAN. Without that, no error found is not
// "healthy": it is "not verified".
func verified(o *Observations) bool {
	if out := o.Outside; out != nil && out.Outside != nil && out.Outside.Reached == probe.OK && out.SameServer == probe.OK {
		return true
	}
	if !o.MappingsKnown || o.Passive == nil || o.Inside == nil || o.Inside.Reached != probe.OK {
		return false // without the passive range, nothing shows that listings work
	}
	for _, p := range o.NeededPorts() {
		if !slices.ContainsFunc(o.Mappings, func(m nat.Mapping) bool {
			return m.Protocol == nat.TCP && m.ExternalPort == p && m.InternalAddr == o.Server
		}) {
			return false
		}
	}
	return true
}

func notVerified(o *Observations) Finding {
	fix := "Run diagnose with --reflector URL: a natdoctor reflector on a machine outside your network (see `natdoctor reflector --help`) checks the server from the internet."
	if o.Discovery == nil {
		fix = "Give the router's address with --gateway IP if this host has no default route, and run diagnose with --reflector URL: a natdoctor reflector outside your network checks the server from the internet."
	}
	return Finding{
		Code: CodeNotVerified, Severity: SevError,
		Summary:     "nothing that was checked shows the server reachable from outside",
		Explanation: "natdoctor found no problem, but it could not check the essentials (see \"Not checked\"), so it cannot call the setup healthy either. Exit status 1 tells scripts so.",
		Fix:         fix,
	}
}

// skip records a check that did not run: check names it (a stable
// identifier), text says what and why in the user's words.
func (b *builder) skip(check, text string) {
	b.notChecked = append(b.notChecked, text)
	b.unchecked = append(b.unchecked, Unchecked{Check: check, Why: text})
}

// NeededPorts returns the ports the server needs mapped: the control port
// (21 or --ftp-port) and the passive range.
func (o *Observations) NeededPorts() []uint16 {
	ports := []uint16{o.ControlPort()}
	if r := o.servedPassive(); r != nil {
		for p := int(r.Low); p <= int(r.High); p++ {
			ports = append(ports, uint16(p))
		}
	}
	return ports
}

// servedPassive is the part of the passive range the server hands out.
// ProFTPD never hands out the top port of its PassivePorts range (the
// lab's ProFTPD 1.3.8: 42000-42009 in 200 replies for PassivePorts 42000
// 42010), so a client never needs that one mapped.
func (o *Observations) servedPassive() *probe.PortRange {
	r := o.Passive
	if r == nil || o.serverSoftware() != "ProFTPD" || r.High <= r.Low || strings.HasPrefix(o.PassiveSource, SourcePASVReplies) {
		return r
	}
	return &probe.PortRange{Low: r.Low, High: r.High - 1}
}

// routerPlace names where the router's admin tool keeps a setting ("dmz",
// "forward" or "upnp"): a place only, to follow "in", never an instruction.
// A guess says so after a comma, without parentheses.
func (o *Observations) routerPlace(setting string) string {
	d := o.Discovery
	var who string
	if d != nil && d.UPnP.Device != nil {
		who = strings.ToLower(d.UPnP.Device.Manufacturer + " " + d.UPnP.Device.ModelName + " " + d.UPnP.Device.FriendlyName + " " + d.UPnP.Device.Server)
	}
	var places map[string]string
	guess := ""
	switch {
	case strings.Contains(who, "apple") || strings.Contains(who, "airport"),
		d != nil && d.UPnP.Device == nil && d.NATPMP.Answered():
		places = map[string]string{
			"dmz":     `AirPort Utility > (base station) > Edit > Network > Network Options > "Default Host"`,
			"forward": "AirPort Utility > (base station) > Edit > Network > Port Settings",
			"upnp":    `AirPort Utility > Edit > Network > Network Options > "Enable NAT Port Mapping Protocol"`,
		}
		if d.UPnP.Device == nil {
			guess = ", if this is an Apple AirPort, as NAT-PMP without UPnP suggests"
		}
	case strings.Contains(who, "fritz") || strings.Contains(who, "avm"):
		places = map[string]string{
			"dmz":     `the FRITZ!Box's Internet > Permit Access > Port Sharing > "Exposed Host"`,
			"forward": "the FRITZ!Box's Internet > Permit Access > Port Sharing",
			"upnp":    `the FRITZ!Box's Internet > Permit Access > Port Sharing > "Permit independent port sharing" for this device`,
		}
	case strings.Contains(who, "openwrt") || strings.Contains(who, "miniupnp"):
		places = map[string]string{
			"dmz":     "OpenWrt's LuCI > Network > Firewall > Port Forwards, a catch-all (DMZ) forward",
			"forward": "OpenWrt's LuCI > Network > Firewall > Port Forwards",
			"upnp":    "OpenWrt's LuCI > Services > UPnP IGD & PCP/NAT-PMP",
		}
	case strings.Contains(who, "pfsense") || strings.Contains(who, "opnsense"):
		places = map[string]string{
			"dmz":     "pfSense/OPNsense's Firewall > NAT > Port Forward, a catch-all forward",
			"forward": "pfSense/OPNsense's Firewall > NAT > Port Forward",
			"upnp":    "pfSense/OPNsense's Services > UPnP & NAT-PMP",
		}
	default:
		places = map[string]string{
			"dmz":     `the router's admin page, under NAT, Firewall or Advanced: "DMZ", "Default Host" or "Exposed Host"`,
			"forward": "the router's admin page, under Port Forwarding, Virtual Servers or NAT",
			"upnp":    "the router's admin page, under UPnP, NAT-PMP or Advanced",
		}
	}
	return places[setting] + guess
}

func (b *builder) router() {
	o := b.o
	d := o.Discovery
	if d == nil {
		b.skip("router", "router: discovery failed: "+o.DiscoveryErr)
		return
	}
	if !d.Any() {
		b.add(Finding{
			Code: CodeNoMappingProtocol, Severity: SevError,
			Summary:     fmt.Sprintf("the router %s answers none of NAT-PMP, PCP and UPnP IGD", d.Gateway),
			Evidence:    map[string]any{"gateway": d.Gateway.String(), "natpmp": d.NATPMP.Error, "pcp": d.PCP.Error, "upnp": d.UPnP.Error},
			Explanation: "natdoctor cannot read or make port mappings: the router has them switched off, or does not offer them.",
			Fix:         "Enable UPnP IGD or NAT-PMP in " + o.routerPlace("upnp") + ". Or forward the ports by hand in " + o.routerPlace("forward") + ".",
		})
	}
	ext := d.ExternalAddr()
	class := nat.AddrNone
	if ext.IsValid() {
		class = nat.ClassifyAddr(ext)
	}
	ev := map[string]any{"router_external_address": addrOrEmpty(ext), "class": string(class)}
	var why string
	switch {
	case ext.IsValid() && class != nat.AddrPublic:
		why = fmt.Sprintf("the router's external address %s is %s", ext, class)
	case !ext.IsValid() && d.NoExternalAddr():
		why = "the router answers but reports no usable external address (its WAN address is private, shared or reserved, or the WAN link is down)"
	case ext.IsValid() && o.Outside != nil && o.Outside.PublicAddr.IsValid() && o.Outside.PublicAddr != ext:
		why = fmt.Sprintf("the router says its external address is %s, but the reflector sees this network as %s", ext, o.Outside.PublicAddr)
		ev["public_address_seen_from_outside"] = o.Outside.PublicAddr.String()
	}
	if why != "" {
		b.add(Finding{
			Code: CodeDoubleNAT, Severity: SevError, Summary: "double NAT: " + why, Evidence: ev,
			Explanation: "Another NAT (a modem-router, or the provider's carrier-grade NAT) stands between this router and the internet. Mappings on this router alone cannot make the server reachable.",
			Fix:         "Put the upstream modem-router in bridge mode, or forward the same ports on it to this router; with carrier-grade NAT (100.64.0.0/10), ask the provider for a public IPv4 address.",
		})
	}
}

// omitEmpty drops empty strings from evidence.
func omitEmpty(m map[string]any) map[string]any {
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

func addrOrEmpty(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return ""
}

func (b *builder) mappings() {
	o := b.o
	if !o.MappingsKnown {
		why := "the router cannot list its mappings (NAT-PMP and PCP cannot)"
		switch {
		case o.MappingsErr != "":
			why = o.MappingsErr
		case o.Discovery == nil:
			why = "the router could not be asked"
		}
		b.skip("mappings", "mappings: "+why)
		return
	}
	have := map[uint16]nat.Mapping{}
	for _, m := range o.Mappings {
		if m.Protocol == nat.TCP {
			have[m.ExternalPort] = m
		}
	}
	var missing []uint16
	var wrong []map[string]any
	var finite []uint16
	needed := o.NeededPorts()
	if na := o.MappingsNotAsked; na != nil {
		b.skip("passive-mappings", fmt.Sprintf("the router's mappings of TCP %s (their leases too): %s", nat.CompressPorts(na.Ports), na.Why))
		needed = slices.DeleteFunc(needed, func(p uint16) bool { return slices.Contains(na.Ports, p) })
	}
	for _, p := range needed {
		m, ok := have[p]
		switch {
		case !ok:
			missing = append(missing, p)
		case m.InternalAddr != o.Server || p == o.ControlPort() && m.InternalPort != o.FTPPort:
			if p == o.ControlPort() {
				b.controlElsewhere = true
			}
			wrong = append(wrong, map[string]any{"port": p, "points_at": fmt.Sprintf("%s:%d", m.InternalAddr, m.InternalPort), "description": m.Description})
		default:
			if m.Lease > 0 {
				finite = append(finite, p)
			}
		}
	}
	if len(missing) > 0 && o.thisHostIsDefault() {
		// They work today through the default host: no error, but the
		// default host's finding says what turning it off would break.
		b.unmappedButDefault = missing
		missing = nil
	}
	if len(missing) > 0 {
		what := "passive ports"
		if slices.Contains(missing, o.ControlPort()) {
			what = "the control port"
			if len(missing) > 1 {
				what = "the control port and passive ports"
			}
		}
		b.add(Finding{
			Code: CodeMappingMissing, Severity: SevError,
			Summary:  fmt.Sprintf("%s not mapped: TCP %s", what, nat.CompressPorts(missing)),
			Evidence: map[string]any{"missing": nat.CompressPorts(missing), "needed": nat.CompressPorts(o.NeededPorts())},
			Explanation: "A connection from outside to an unmapped port stops at the router. An unmapped control port means no login; " +
				"an unmapped passive port means a login that works and a listing that fails now and then (the server picks passive ports at random).",
			Fix: fmt.Sprintf("natdoctor add %s  (or `natdoctor keep ...` to keep them alive)", portsArg(o)) + learnedNote(o),
		})
	}
	if len(wrong) > 0 {
		b.add(Finding{
			Code: CodeMappingWrongHost, Severity: SevError,
			Summary:     fmt.Sprintf("%d of the server's ports are mapped to another LAN address, not %s", len(wrong), o.Server),
			Evidence:    map[string]any{"mappings": wrong},
			Explanation: "The router forwards these ports to another machine: a stale DHCP lease, an old server, or a typo in a rule.",
			Fix:         fmt.Sprintf("natdoctor add %s --force replaces them. Or fix the rules in %s.", portsArg(o), o.routerPlace("forward")),
		})
	}
	if len(finite) > 0 {
		b.add(Finding{
			Code: CodeLeaseExpiring, Severity: SevInfo,
			Summary:     fmt.Sprintf("mappings of TCP %s have finite leases and lapse unless renewed", nat.CompressPorts(finite)),
			Evidence:    map[string]any{"ports": nat.CompressPorts(finite)},
			Explanation: "Leased mappings expire, and a router that restarts forgets them.",
			Fix:         fmt.Sprintf("run `natdoctor keep %s` as a service (see contrib/)", portsArg(o)),
		})
	}
}

// ControlPort is the port clients connect to from outside.
func (o *Observations) ControlPort() uint16 {
	if o.PublicPort != 0 {
		return o.PublicPort
	}
	return o.FTPPort
}

func portsArg(o *Observations) string {
	s := fmt.Sprint(o.FTPPort)
	if o.ControlPort() != o.FTPPort {
		s = fmt.Sprintf("%d:%d", o.ControlPort(), o.FTPPort)
	}
	if o.Passive != nil {
		s += " " + o.Passive.String()
	}
	return s
}

func (b *builder) server() {
	o := b.o
	in := o.Inside
	if in == nil {
		b.skip("lan-ftp", "FTP server on the LAN: not probed")
		return
	}
	if in.Reached != probe.OK {
		f := Finding{
			Code: CodeFTPUnreachable, Severity: SevError,
			Summary:     fmt.Sprintf("the FTP server %s does not answer on the LAN: %s", in.Target, in.ReachErr),
			Evidence:    map[string]any{"target": in.Target, "error": in.ReachErr, "banner": in.Banner},
			Explanation: "If the server does not answer inside the network, nothing outside can reach it either.",
			Fix:         "Start the FTP server, check that it listens on this address and port, and that the host firewall lets port " + fmt.Sprint(o.FTPPort) + " in.",
		}
		if in.GreetingDelay >= probe.GreetingTimeout {
			f.Explanation = "Something accepted the connection but said nothing for as long as clients wait: a server stuck looking up the client's name in a DNS server that does not answer, or one at its session limit."
			f.Fix = reverseDNSFix(o) + " Check the server's log, and its session limit."
		}
		b.add(f)
		return
	}
	greet, where := in.GreetingDelay, "on the LAN"
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
	if in.Login == probe.Skipped && in.TLS != nil && in.TLS.Status != probe.OK {
		b.skip("login", "login: not tried, because FTPS failed")
	} else if in.Login == probe.Skipped {
		b.skip("login", "login: no credentials given (--user with --password-env or --password-file)")
	} else if in.Login != probe.OK && (o.Outside == nil || o.Outside.Outside == nil) {
		b.add(loginFailed(in, false, "on the LAN"))
	}
	if in.Confined == probe.Failed {
		b.add(Finding{
			Code: CodeFTPNoChroot, Severity: SevWarning,
			Summary:     fmt.Sprintf("logged-in users can leave their home %s: CWD %s works, the whole disk is browsable", in.Home, in.EscapedTo),
			Evidence:    map[string]any{"home": in.Home, "reached": in.EscapedTo, "user": in.LoginUser},
			Explanation: "Without a chroot (\"default root\"), anyone who logs in, or guesses a password, can read every file the account may read, system files included.",
			Fix:         noChrootFix(o),
		})
	}
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
	b.outsideRange(in)
	if dead := in.DeadPorts(); len(dead) > 0 && (o.Outside == nil || len(o.Outside.Passive) == 0) {
		b.add(Finding{
			Code: CodePASVUnreachable, Severity: SevError,
			Summary:     fmt.Sprintf("passive ports %s do not carry a data connection", nat.CompressPorts(dead)),
			Evidence:    map[string]any{"ports": nat.CompressPorts(dead), "seen_from": "the LAN"},
			Explanation: "Even on the LAN, these passive ports do not accept a connection: a host firewall blocks them.",
			Fix:         "Open the passive range in the server's firewall.",
		})
	}
}

// serverSoftware names the FTP server: from its configuration, else from
// its greeting.
func (o *Observations) serverSoftware() string {
	if o.Config != nil {
		return o.Config.Server
	}
	if o.Inside != nil {
		return o.Inside.Software
	}
	return ""
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

// learnedNote warns that a range learned from replies is a lower bound.
func learnedNote(o *Observations) string {
	if o.Passive == nil || !strings.HasPrefix(o.PassiveSource, SourcePASVReplies) {
		return ""
	}
	return ". The range " + o.Passive.String() + " is what the server's replies showed, so its configured range may be wider: " +
		"map exactly what is configured (Pure-FTPd PassivePortRange, vsftpd pasv_min_port/pasv_max_port, ProFTPD PassivePorts), or give it with --pasv"
}

func passiveRangeFix(o *Observations, r probe.PortRange) string {
	switch o.serverSoftware() {
	case "vsftpd":
		return fmt.Sprintf("Set pasv_min_port=%d and pasv_max_port=%d in vsftpd.conf.", r.Low, r.High)
	case "ProFTPD":
		return fmt.Sprintf("Set PassivePorts %d %d in proftpd.conf.", r.Low, r.High)
	case "Pure-FTPd":
		return fmt.Sprintf("Set the server's passive range to %s: PassivePortRange %d %d (pure-ftpd -p %d:%d; on Debian, /etc/pure-ftpd/conf/PassivePortRange).", r, r.Low, r.High, r.Low, r.High)
	}
	return fmt.Sprintf("Set the server's passive range to %s: Pure-FTPd PassivePortRange %d %d; vsftpd pasv_min_port/pasv_max_port; ProFTPD PassivePorts; pyftpdlib passive_ports.", r, r.Low, r.High)
}

func reverseDNSFix(o *Observations) string {
	switch o.serverSoftware() {
	case "vsftpd":
		return "Set reverse_lookup_enable=NO in vsftpd.conf."
	case "ProFTPD":
		return "Set UseReverseDNS off and IdentLookups off in proftpd.conf."
	case "Pure-FTPd":
		return "Turn reverse lookups off: DontResolve yes (pure-ftpd -H; on Debian, echo yes > /etc/pure-ftpd/conf/DontResolve)."
	}
	return "Turn the server's reverse DNS lookups off: Pure-FTPd DontResolve yes (-H); vsftpd reverse_lookup_enable=NO; ProFTPD UseReverseDNS off and IdentLookups off."
}

func noChrootFix(o *Observations) string {
	switch o.serverSoftware() {
	case "vsftpd":
		return "Set chroot_local_user=YES in vsftpd.conf."
	case "ProFTPD":
		return "Set DefaultRoot ~ in proftpd.conf."
	case "Pure-FTPd":
		return "Set ChrootEveryone yes (pure-ftpd -A), or give virtual users a home ending in /./ (pure-pw usermod USER -d DIR)."
	}
	return "Keep users inside their home: Pure-FTPd ChrootEveryone yes; vsftpd chroot_local_user=YES; ProFTPD DefaultRoot ~."
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
		if in.Login != probe.Skipped || in.LoginUser != "" {
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

func forcedAddrFix(o *Observations, ext string) string {
	addr := ext
	if addr == "" {
		addr = "<your public address>"
	}
	switch o.serverSoftware() {
	case "vsftpd":
		return "Set pasv_address=" + addr + " in vsftpd.conf."
	case "ProFTPD":
		return "Set MasqueradeAddress " + addr + " in proftpd.conf."
	}
	return "Tell the server its public address: Pure-FTPd `ForcePassiveIP " + addr + "` (or -P " + addr + "); vsftpd pasv_address; ProFTPD MasqueradeAddress. With a dynamic address, use a DNS name where the server allows it."
}

func loginFailed(r *probe.FTPResult, otherMachine bool, where string) Finding {
	f := Finding{
		Code: CodeFTPLoginFailed, Severity: SevError,
		Evidence: map[string]any{"user": r.LoginUser, "code": r.LoginCode, "reply": r.LoginText, "banner": r.Banner, "seen_from": where},
	}
	if otherMachine {
		f.Summary = fmt.Sprintf("login fails from outside (%d) because port %s reaches another machine, not a wrong password", r.LoginCode, portOf(r.Target))
		f.Explanation = "The same credentials work on the LAN. From outside, the connection lands on another machine, which does not know the account: to the user it looks like \"my password is wrong\"."
		f.Fix = "See default-host-override: make port " + portOf(r.Target) + " from outside reach this server."
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

func (b *builder) outside() {
	o := b.o
	out := o.Outside
	if out == nil {
		b.skip("outside-control-port", "from outside: port "+fmt.Sprint(o.ControlPort())+" reaches this server (needs --reflector URL)")
		b.skip("outside-passive-ports", "from outside: every passive port carries a data connection (needs --reflector)")
		b.skip("outside-default-host", "from outside: default host (DMZ) overriding the mappings (needs --reflector)")
		if o.HairpinStatus != "" && o.HairpinStatus != probe.OK && o.HairpinStatus != probe.Skipped {
			b.add(Finding{
				Code: CodeHairpin, Severity: SevInfo,
				Summary:     "the router does not loop connections to its public address back to the LAN (hairpin NAT)",
				Evidence:    map[string]any{"hairpin": hairpinEvidence(o.Hairpin)},
				Explanation: "From inside, the public address does not lead to the server. That alone says nothing about the outside: many routers do not hairpin. Check from outside with a reflector.",
				Fix:         "Run `natdoctor reflector` on a machine outside and pass --reflector http://HOST:8021.",
			})
		}
		return
	}
	if out.PublicError != "" {
		b.skip("outside", "from outside: the reflector did not answer: "+out.PublicError)
		return
	}
	same := out.SameServer
	if out.Outside != nil && out.Outside.Reached != probe.OK {
		b.add(Finding{
			Code: CodeFTPUnreachable, Severity: SevError,
			Summary:     fmt.Sprintf("from outside, %s:%d does not answer: %s", out.PublicAddr, o.ControlPort(), out.Outside.ReachErr),
			Evidence:    map[string]any{"public_address": out.PublicAddr.String(), "error": out.Outside.ReachErr},
			Explanation: "The server works on the LAN, but a connection from the internet to the public address does not get through.",
			Fix:         "Map the control port: natdoctor add " + portsArg(o),
		})
	}
	canaryOther := out.Canary != nil && out.Canary.MappingsReachHere == probe.Failed
	canaryHere := out.Canary != nil && out.Canary.MappingsReachHere == probe.OK
	// Another machine on port 21 is a default host only when the mappings
	// do not explain it: a canary mapped here that arrives here proves
	// mappings are followed, and a listing that maps 21 elsewhere names
	// the real cause (mapping-wrong-host).
	dmz := canaryOther || same == probe.Failed && !canaryHere && !b.controlElsewhere
	if same == probe.Failed && !dmz {
		if !b.controlElsewhere {
			b.add(Finding{
				Code: CodeMappingWrongHost, Severity: SevError,
				Summary: fmt.Sprintf("from outside, port %d reaches another machine, though mappings to this host work", o.ControlPort()),
				Evidence: omitEmpty(map[string]any{"banner_inside": strings.Join(bannerOf(out.Inside), " | "),
					"banner_outside": strings.Join(bannerOf(out.Outside), " | "), "canary": "reached this host"}),
				Explanation: "A canary port mapped to this host reached it, so the router follows mappings; port " + fmt.Sprint(o.ControlPort()) +
					" itself is forwarded to another machine (an old rule, a stale DHCP lease, a typo).",
				Fix: fmt.Sprintf("Point the rule for port %d at %s: natdoctor add %s --force. Or fix it in %s.", o.ControlPort(), o.Server, portsArg(o), o.routerPlace("forward")),
			})
		}
	} else if dmz {
		ev := map[string]any{}
		if out.Inside != nil {
			ev["banner_inside"] = out.Inside.Banner
		}
		if out.Outside != nil {
			ev["banner_outside"] = out.Outside.Banner
			ev["login_outside"] = fmt.Sprintf("%s %d", out.Outside.Login, out.Outside.LoginCode)
		}
		if out.Canary != nil {
			ev["canary"] = out.Canary.Mapped
		}
		b.add(Finding{
			Code: CodeDefaultHost, Severity: SevError,
			Summary:  "from outside, mapped ports reach another machine than this server: a default host (DMZ) overrides the port mappings",
			Evidence: ev,
			Explanation: "The router sends inbound connections to its default host (DMZ) instead of following the port mappings — " +
				"the Apple AirPort \"Default Host\" + NAT-PMP conflict. Clients meet another server, or none: " +
				"\"authentication keeps failing\" or \"the server hangs\".",
			Fix: "Turn the default host off, or point it at " + o.Server.String() + ", in " + o.routerPlace("dmz") + ". Then run diagnose again.",
		})
	}
	if out.Outside != nil && out.Outside.Reached == probe.OK && out.Outside.Login == probe.Failed {
		b.add(loginFailed(out.Outside, same == probe.Failed, "from outside"))
	}
	if c := out.Canary; c != nil && c.ThisHostIsDefault == probe.OK {
		f := Finding{
			Code: CodeThisHostDefault, Severity: SevWarning,
			Summary:     "this host is the router's default host (DMZ): every port of it is exposed to the internet",
			Evidence:    map[string]any{"unmapped_port": c.Unmapped.Port, "outcome": c.Unmapped.Outcome},
			Explanation: "An unmapped port reached this host from outside: the router forwards everything here, so every service on this machine is reachable from the internet.",
			Fix:         "Turn the default host off, in " + o.routerPlace("dmz") + ", and map only the ports the server needs.",
		}
		if c.MappingsReachHere == probe.OK {
			f.Explanation += " A canary port mapped to this host reached it too: the router follows mappings."
		}
		if len(b.unmappedButDefault) > 0 {
			ports := nat.CompressPorts(b.unmappedButDefault)
			f.Evidence["unmapped_needed_ports"] = ports
			f.Explanation += " The server works from outside only because of it: TCP " + ports + " are not mapped, so turning the default host off breaks the server until they are."
			f.Fix = "First map the ports: natdoctor add " + portsArg(o) + ". Then turn the default host off, in " + o.routerPlace("dmz") + "."
		}
		b.add(f)
	}
	var dead []uint16
	served := o.servedPassive()
	for _, p := range out.Passive {
		if (p.Status == probe.Failed || p.Status == probe.Error) && (served == nil || served.Contains(p.Port)) {
			dead = append(dead, p.Port)
		}
	}
	if out.Outside != nil {
		// A transfer that failed on a port the port check proved to reach
		// this host is no unreachable port (pyftpdlib hands EPSV the port
		// PASV just used, and the relayed second transfer can come back
		// empty): the port check is the authority on reachability.
		reached := map[uint16]bool{}
		for _, p := range out.Passive {
			reached[p.Port] = p.Status == probe.OK
		}
		for _, p := range out.Outside.DeadPorts() {
			if !slices.Contains(dead, p) && !reached[p] {
				dead = append(dead, p)
			}
		}
	}
	if len(dead) > 0 {
		fix := "natdoctor add " + nat.CompressPorts(dead) + ". Or fix the rules in " + o.routerPlace("forward") + "."
		if dmz {
			fix = "First fix default-host-override: the default host captures these ports too. Then, if any stay dead: " + fix
		}
		outcomes := map[string][]uint16{}
		for _, p := range out.Passive {
			if p.Status == probe.Failed || p.Status == probe.Error {
				outcomes[p.Outcome] = append(outcomes[p.Outcome], p.Port)
			}
		}
		byOutcome := map[string]any{}
		for k, v := range outcomes {
			byOutcome[k] = nat.CompressPorts(v)
		}
		b.add(Finding{
			Code: CodePASVUnreachable, Severity: SevError,
			Summary:  fmt.Sprintf("from outside, passive ports %s do not reach this server", nat.CompressPorts(dead)),
			Evidence: map[string]any{"ports": nat.CompressPorts(dead), "outcomes": byOutcome},
			Explanation: "Logins work but listings and transfers fail whenever the server picks one of these ports — one time in " +
				fmt.Sprint(max(1, rangeSize(o.Passive))) + " per dead port, at random. A port forgotten between two router rules looks exactly like this.",
			Fix: fix,
		})
	}
	if o.Passive == nil {
		b.skip("outside-passive-ports", "from outside: passive ports (the passive range is unknown: give --pasv or --ftp-config)")
	}
	if same == probe.OK && len(dead) == 0 && out.Outside != nil && out.Outside.Reached == probe.OK && out.Outside.List != probe.Failed {
		b.add(Finding{
			Code: CodeOutsideOK, Severity: SevOK,
			Summary:  fmt.Sprintf("from outside, %s:%d reaches this server", out.PublicAddr, o.ControlPort()),
			Evidence: map[string]any{"banner_outside": out.Outside.Banner, "login": string(out.Outside.Login), "list": string(out.Outside.List)},
		})
	}
}

func rangeSize(r *probe.PortRange) int {
	if r == nil {
		return 0
	}
	return r.Size()
}

func hairpinEvidence(r *probe.FTPResult) map[string]any {
	if r == nil {
		return nil
	}
	return map[string]any{"target": r.Target, "reached": string(r.Reached), "error": r.ReachErr, "banner": r.Banner}
}

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

// path draws the hops of a connection from outside.
func path(o *Observations) []Hop {
	var hops []Hop
	ext := ""
	if o.Discovery != nil {
		ext = addrOrEmpty(o.Discovery.ExternalAddr())
	}
	out := o.Outside
	reached := probe.Skipped
	detail := "not checked: needs --reflector"
	if out != nil && out.Outside != nil {
		reached = out.Outside.Reached
		detail = out.Outside.ReachErr
		if reached == probe.OK {
			detail = "answered through the reflector"
		}
	}
	pub := ext
	if out != nil && out.PublicAddr.IsValid() {
		pub = out.PublicAddr.String()
	}
	if pub == "" {
		pub = "?"
	}
	hops = append(hops, Hop{Name: fmt.Sprintf("internet -> router %s:%d", pub, o.ControlPort()), Status: reached, Detail: detail})

	mapHop := Hop{Name: fmt.Sprintf("mapping TCP %d -> %s:%d", o.ControlPort(), serverName(o.Server), o.FTPPort), Status: probe.Skipped, Detail: "the router cannot list mappings"}
	switch {
	case o.Discovery == nil:
		mapHop.Detail = "the router could not be asked"
	case o.Discovery.UPnP.Device != nil && o.MappingsErr != "":
		mapHop.Detail = "the router did not answer the lookup"
	}
	if o.MappingsKnown {
		mapHop.Status, mapHop.Detail = probe.Failed, "not mapped"
		for _, m := range o.Mappings {
			if m.Protocol == nat.TCP && m.ExternalPort == o.ControlPort() {
				if m.InternalAddr == o.Server {
					mapHop.Status, mapHop.Detail = probe.OK, fmt.Sprintf("%q, lease %s", m.Description, leaseText(m.Lease))
				} else {
					mapHop.Detail = fmt.Sprintf("points at %s:%d", m.InternalAddr, m.InternalPort)
				}
			}
		}
	}
	hops = append(hops, mapHop)

	srv := Hop{Name: fmt.Sprintf("server %s:%d", serverName(o.Server), o.FTPPort), Status: probe.Skipped, Detail: "not checked from outside"}
	if out != nil && out.SameServer != probe.Skipped {
		srv.Status = out.SameServer
		if out.SameServer == probe.OK {
			srv.Detail = "the same server answers inside and outside"
		} else {
			srv.Detail = "another machine answers from outside"
		}
	}
	hops = append(hops, srv)

	pasv := Hop{Name: "passive ports", Status: probe.Skipped, Detail: "not checked from outside"}
	if o.Passive != nil {
		pasv.Name = "passive ports " + o.Passive.String()
	}
	if out != nil && len(out.Passive) > 0 {
		var dead, skipped []uint16
		for _, p := range out.Passive {
			switch p.Status {
			case probe.Failed, probe.Error:
				dead = append(dead, p.Port)
			case probe.Skipped:
				skipped = append(skipped, p.Port)
			}
		}
		pasv.Status, pasv.Detail = probe.OK, "every port reached this server"
		if len(dead) > 0 {
			pasv.Status, pasv.Detail = probe.Failed, "dead: "+nat.CompressPorts(dead)
		}
		if len(skipped) > 0 {
			pasv.Detail += "; in use, not checked: " + nat.CompressPorts(skipped)
		}
	}
	hops = append(hops, pasv)
	return hops
}

func leaseText(d time.Duration) string {
	if d == 0 {
		return "permanent"
	}
	return d.String()
}

// serverName is the server's address, or "this host" when it is unknown.
func serverName(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return "this host"
}

// bannerOf returns r's greeting, or nothing for an FTP check that did not run.
func bannerOf(r *probe.FTPResult) []string {
	if r == nil {
		return nil
	}
	return r.Banner
}
