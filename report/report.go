package report

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// Finding codes of these rules: a public contract, documented in README.
const (
	CodeNotVerified = "not-verified"
)

var _ = catalogue([]Entry{
	{Code: CodeNotVerified, Severity: SevError,
		Example: "nothing that was checked shows the server reachable from outside",
		Fix:     "run with `--reflector URL` (and `--gateway IP` without a default route)"},
})

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
	ipv4 := slices.Clone(b.findings)
	b.ipv6()
	r.Findings = b.findings
	r.NotChecked = append(r.NotChecked, b.notChecked...)
	r.Unchecked = append([]Unchecked{}, b.unchecked...)
	order(r.Findings)
	r.Path = path(o)
	r.Healthy = !r.HasErrors()
	r.Verdict = verdict(r)
	if o.IPv6 != nil {
		r.Families = families(r, ipv4)
		r.Verdict = familiesVerdict(r.Families)
	}
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

// WalkReport is one FTP walk judged alone: what probe ftp shows.
type WalkReport struct {
	Findings []Finding `json:"findings"`
	// Unchecked are the checks the walk could not make, and why.
	Unchecked []Unchecked `json:"not_checked_items"`
}

// HasErrors reports whether any finding is an error.
func (w *WalkReport) HasErrors() bool {
	return slices.ContainsFunc(w.Findings, func(f Finding) bool { return f.Severity == SevError })
}

// JudgeWalk judges one FTP walk, made from here (probe ftp), with the
// server rules diagnose uses for its walk on the LAN: reachable, greeting,
// TLS, login, confinement, the advertised address, the passive ports
// against expected (nil: not known).
func JudgeWalk(r *probe.FTPResult, expected *probe.PortRange) *WalkReport {
	return judgeWalkFrom(r, expected, "from here")
}

// judgeWalkFrom is JudgeWalk for a walk made from where.
func judgeWalkFrom(r *probe.FTPResult, expected *probe.PortRange, where string) *WalkReport {
	o := &Observations{Inside: r, Passive: expected, FTPPort: uint16(portNumber(r.Target)), Credentials: r.LoginUser != ""}
	b := builder{o: o, walkFrom: where}
	b.server()
	order(b.findings)
	w := &WalkReport{Findings: append([]Finding{}, b.findings...), Unchecked: append([]Unchecked{}, b.unchecked...)}
	if onBuild != nil {
		onBuild(&Report{Findings: w.Findings})
	}
	return w
}

// portNumber is the port of a walk's target ("10.0.1.2:21"), 21 if none.
func portNumber(target string) int {
	n, err := strconv.Atoi(portOf(target))
	if err != nil {
		return 21
	}
	return n
}

// onBuild, set by the tests, sees every report Build makes.
var onBuild func(*Report)

// order sorts findings worst first; within a severity, a server that does
// not answer on the LAN first (nothing else can work), then causes before
// their symptoms (the catalogue's After, among the findings present), then
// in catalogue order. A symptom's fix starts with its causes'.
func order(fs []Finding) {
	present := map[string]bool{}
	for _, f := range fs {
		present[f.Code] = true
	}
	depth := depths(func(code string) []string {
		return slices.DeleteFunc(afterOf(code), func(a string) bool { return !present[a] })
	})
	for i, f := range fs {
		e, _ := entry(f)
		if f.root {
			continue
		}
		for _, a := range e.After {
			if present[a] && a != f.Code {
				fs[i].CausedBy = append(fs[i].CausedBy, a)
			}
		}
		if c := fs[i].CausedBy; len(c) > 0 && f.Fix != "" {
			fs[i].Fix = "First fix " + strings.Join(c, ", ") + " (above). Then, if this is still so: " + lowerFirst(f.Fix)
		}
	}
	rank := func(f Finding) int {
		if f.root {
			return -1
		}
		return depth(f.Code)
	}
	index := func(f Finding) int {
		return slices.IndexFunc(Catalogue, func(e Entry) bool { return e.Code == f.Code })
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(a.Severity.rank()-b.Severity.rank(), rank(a)-rank(b), index(a)-index(b))
	})
}

// lowerFirst lowers a sentence's first word when it is a plain word
// ("Make", not "FTP" or "AirPort").
func lowerFirst(s string) string {
	w, _, _ := strings.Cut(s, " ")
	if len(w) > 1 && w[0] >= 'A' && w[0] <= 'Z' && strings.ToLower(w[1:]) == w[1:] {
		return strings.ToLower(w[:1]) + s[1:]
	}
	return s
}

// afterOf are the codes code follows from, at any severity.
func afterOf(code string) []string {
	var after []string
	for _, e := range Catalogue {
		if e.Code == code {
			after = append(after, e.After...)
		}
	}
	return after
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
	// walkFrom says where a walk judged alone (JudgeWalk) ran; "" for
	// diagnose's walk on the LAN.
	walkFrom string
}

// where says where the judged walk ran, for the user: "on the LAN".
func (b *builder) where() string { return cmp.Or(b.walkFrom, "on the LAN") }

func (b *builder) add(f Finding) { b.findings = append(b.findings, f) }

func (b *builder) hasErrors() bool {
	return slices.ContainsFunc(b.findings, func(f Finding) bool { return f.Severity == SevError })
}

// verified reports whether some check shows the server reachable from
// outside: the reflector's walk, or the router mapping every needed port
// to a server that answers on the LAN. Without that, no error found is not
// "healthy": it is "not verified".
func verified(o *Observations) bool {
	if out := o.Outside; out != nil && out.Outside != nil && out.Outside.Reached == probe.OK && out.SameServer == check.Yes {
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
