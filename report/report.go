package report

import (
	"fmt"
	"slices"
	"sort"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

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
