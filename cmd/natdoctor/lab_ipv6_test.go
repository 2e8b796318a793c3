package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/report"
)

// ipv6Row is one IPv6 row of the verdict matrix: the lab's clients over
// IPv4 (the router's WAN address) and over IPv6 (the server's global
// address) against natdoctor diagnose --ipv6's verdict per family.
type ipv6Row struct {
	name  string
	opts  lab.Options
	setup func(t *testing.T, l *lab.Lab)
	// cause6 is the IPv6 finding that names what is wrong ("" when IPv6
	// works); warns are findings that must be there as well.
	cause6 string
	// says6 is text the cause's summary must contain (the port it names).
	says6 string
	warns []string
	// v4Class: the lab's outside host sits in the carrier's network with
	// Options.CGNAT, so IPv4 clients there are no witness; natdoctor is
	// held to the address class (status "impossible") instead.
	v4Class bool
}

var (
	allIPv6Ports = []string{"21", fmt.Sprintf("%d-%d", lab.PassiveLow, lab.PassiveHigh)}
	oldPrivacy6  = "2001:db8:2::99"
)

// addPinholes opens the FTP ports over IPv6 with natdoctor itself.
func addPinholes(t *testing.T, l *lab.Lab) {
	t.Helper()
	if out, errOut, code := l.Server.Natdoctor(t, append([]string{"add", "--ipv6", "--lease", "10m"}, allIPv6Ports...)...); code != exitOK {
		t.Fatalf("add --ipv6: exit %d\n%s%s", code, out, errOut)
	}
}

var ipv6Rows = []ipv6Row{
	{name: "IPv6: pinholes for 21 and the passive range (natdoctor add --ipv6)", opts: lab.Options{IPv6: true, NoOtherFTP: true},
		setup: func(t *testing.T, l *lab.Lab) { mapAllUPnP(t, l); addPinholes(t, l) }},
	{name: "IPv6: no pinholes, the router's IPv6 firewall drops inbound", opts: lab.Options{IPv6: true, NoOtherFTP: true},
		setup: mapAllUPnP, cause6: report.CodeIPv6ControlFiltered},
	{name: "IPv6: one passive port's pinhole removed", opts: lab.Options{IPv6: true, NoOtherFTP: true},
		setup: func(t *testing.T, l *lab.Lab) {
			mapAllUPnP(t, l)
			addPinholes(t, l)
			if out, errOut, code := l.Server.Natdoctor(t, "remove", "--ipv6", "42005"); code != exitOK {
				t.Fatalf("remove --ipv6 42005: exit %d\n%s%s", code, out, errOut)
			}
		}, cause6: report.CodeIPv6PassiveFiltered, says6: "TCP 42005"},
	{name: "IPv6: pinholes for an old privacy address", opts: lab.Options{IPv6: true, NoOtherFTP: true},
		setup: func(t *testing.T, l *lab.Lab) {
			mapAllUPnP(t, l)
			// The server sends from a second address while natdoctor adds
			// the pinholes, then that address is deprecated and the
			// server sends from its stable one again: what a privacy
			// address does after a day.
			l.Server.MustRun(t, "ip", "-6", "addr", "add", oldPrivacy6+"/64", "dev", "eth0", "nodad")
			l.Server.MustRun(t, "ip", "-6", "route", "replace", "default", "via", lab.RouterLAN6.String(), "src", oldPrivacy6)
			addPinholes(t, l)
			l.Server.MustRun(t, "ip", "-6", "addr", "change", oldPrivacy6+"/64", "dev", "eth0", "preferred_lft", "0", "nodad")
			l.Server.MustRun(t, "ip", "-6", "route", "replace", "default", "via", lab.RouterLAN6.String())
		}, cause6: report.CodeIPv6PinholeOther},
	{name: "IPv6: pinholes open, the FTP server listens on IPv4 only", opts: lab.Options{IPv6: true, NoOtherFTP: true, ServerIPv4Only: true},
		setup: func(t *testing.T, l *lab.Lab) { mapAllUPnP(t, l); addPinholes(t, l) }, cause6: report.CodeIPv6NotListening},
	{name: "IPv6: the router's IPv6 firewall lets everything in", opts: lab.Options{IPv6: true, NoOtherFTP: true, OpenIPv6: []string{"all"}},
		setup: mapAllUPnP, warns: []string{report.CodeIPv6FirewallOpen}},
	{name: "carrier-grade NAT IPv4, IPv6 pinholes opened", opts: lab.Options{IPv6: true, CGNAT: true, NoOtherFTP: true},
		setup: addPinholes, v4Class: true}, // upnpc maps nothing on a router with a shared WAN address
}

var (
	ipv6TableMu sync.Mutex
	ipv6Table   = map[string]string{}
)

// TestLabIPv6Verdicts: per family, natdoctor calls the server reachable
// if and only if lftp, curl and ftplib from outside log in and list.
func TestLabIPv6Verdicts(t *testing.T) {
	lab.Skip(t)
	t.Cleanup(printIPv6Verdicts)
	for _, row := range ipv6Rows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			checkIPv6Verdict(t, row)
		})
	}
}

func checkIPv6Verdict(t *testing.T, row ipv6Row) {
	l := lab.Start(t, row.opts)
	refl := l.StartReflector(t, "--allow-private") // the lab's IPv6 prefixes are documentation ones
	refl6 := fmt.Sprintf("http://[%s]:%d", lab.Outside6, lab.ReflectorPort)
	if row.setup != nil {
		row.setup(t, l)
	}
	v6 := l.Judge(t, lab.JudgeOptions{IPv6: true})
	var v4 lab.Judgement
	if !row.v4Class {
		v4 = l.Judge(t, lab.JudgeOptions{})
	}
	r, out, code := labDiagnose(t, l, "--ipv6", "--reflector", refl, "--reflector", refl6)
	var problems, all []string
	for _, f := range r.Findings {
		all = append(all, f.Code+"("+string(f.Severity)+")")
		if !report.Catalogued(f) {
			problems = append(problems, fmt.Sprintf("finding %s (%s) is not in the catalogue", f.Code, f.Severity))
		}
	}
	if len(r.Families) != 2 {
		t.Fatalf("no verdict per family: %q\n%s", r.Verdict, out)
	}
	fam4, fam6 := r.Families[0], r.Families[1]
	v4Fails := v4.LenientFails()
	switch {
	case row.v4Class && fam4.Status != "impossible":
		problems = append(problems, fmt.Sprintf("IPv4 behind carrier-grade NAT is %s", fam4.Status))
	case !row.v4Class && v4Fails == (fam4.Status == "reachable"):
		problems = append(problems, fmt.Sprintf("IPv4 clients fail=%v, natdoctor says IPv4 %s", v4Fails, fam4.Status))
	}
	v6Fails := v6.LenientFails()
	if v6Fails == (fam6.Status == "reachable") {
		problems = append(problems, fmt.Sprintf("IPv6 clients fail=%v, natdoctor says IPv6 %s", v6Fails, fam6.Status))
	}
	var errs6 []string
	for _, f := range r.Findings {
		if f.Severity == report.SevError && strings.HasPrefix(f.Code, "ipv6-") {
			errs6 = append(errs6, f.Code)
		}
	}
	switch {
	case row.cause6 == "" && v6Fails:
		problems = append(problems, "the row is meant to work over IPv6, but clients fail: the lab is wrong")
	case row.cause6 != "" && !v6Fails:
		problems = append(problems, fmt.Sprintf("the row is meant to break over IPv6 (%s), but every client works: the lab is wrong", row.cause6))
	case v6Fails && (len(errs6) == 0 || errs6[0] != row.cause6):
		problems = append(problems, fmt.Sprintf("first IPv6 error %v, want %s", errs6, row.cause6))
	case !v6Fails && len(errs6) > 0:
		problems = append(problems, fmt.Sprintf("IPv6 clients work, but natdoctor finds %v", errs6))
	}
	if (v4Fails || v6Fails || row.v4Class) != (code == exitProblem) || (code != exitOK && code != exitProblem) {
		problems = append(problems, fmt.Sprintf("exit %d with IPv4 clients failing=%v, IPv6 clients failing=%v", code, v4Fails || row.v4Class, v6Fails))
	}
	if row.says6 != "" && !slices.ContainsFunc(r.Findings, func(f report.Finding) bool {
		return f.Code == row.cause6 && strings.Contains(f.Summary, row.says6)
	}) {
		problems = append(problems, fmt.Sprintf("%s does not say %q", row.cause6, row.says6))
	}
	for _, w := range row.warns {
		if !slices.ContainsFunc(r.Findings, func(f report.Finding) bool { return f.Code == w }) {
			problems = append(problems, "no "+w)
		}
	}
	clients4 := v4.Summary()
	if row.v4Class {
		clients4 = "not a witness (the outside host is in the carrier's network)"
	}
	agree := "agree"
	if len(problems) > 0 {
		agree = "WRONG: " + strings.Join(problems, "; ")
		t.Errorf("%s\nIPv4 clients: %s\nIPv6 clients: %s\nnatdoctor exit %d: %s\n%s", strings.Join(problems, "\n"), v4, v6, code, r.Verdict, out)
	}
	ipv6TableMu.Lock()
	ipv6Table[row.name] = fmt.Sprintf("| %s | %s | %s | %s / %s | %d | %s | %s |", row.name, clients4, v6.Summary(), fam4.Status, fam6.Status, code, strings.Join(all, " "), agree)
	ipv6TableMu.Unlock()
}

// printIPv6Verdicts prints the IPv6 rows' table (make verdicts).
func printIPv6Verdicts() {
	var names []string
	for _, row := range ipv6Rows {
		names = append(names, row.name)
	}
	printTable("| scenario | IPv4 clients (lftp, curl, ftplib) | IPv6 clients (lftp, curl, ftplib; EPSV) | natdoctor IPv4 / IPv6 | exit | findings | verdict |",
		names, ipv6Table, "IPv6 rows")
}

// TestLabFTPPinholes: natdoctor add --ipv6 21 42000-42010 opens the real
// miniupnpd's IPv6 firewall (PCP for 21, UPnP for the range) and lftp,
// curl and ftplib from outside log in and list over IPv6; remove --ipv6
// closes every pinhole, and the same clients fail again.
func TestLabFTPPinholes(t *testing.T) {
	lab.Skip(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{IPv6: true, NoOtherFTP: true})
	if j := l.Judge(t, lab.JudgeOptions{IPv6: true, Listings: 4}); !j.LenientFails() {
		t.Fatalf("before add --ipv6, clients reach the server over IPv6: %s", j)
	}
	addPinholes(t, l)
	if j := l.Judge(t, lab.JudgeOptions{IPv6: true}); j.LenientFails() || j.StrictFails() {
		t.Errorf("after add --ipv6: %s", j)
	}
	// list --ipv6 asks the router about each UPnP pinhole: miniupnpd
	// answers for every one it has (its nftables backend counts no
	// packets: 0 whatever went through, so the count is not asserted).
	out, errOut, code := l.Server.Natdoctor(t, "list", "--ipv6", "--json")
	var listed struct {
		Pinholes []listedPinhole `json:"pinholes"`
	}
	if err := json.Unmarshal([]byte(out), &listed); code != exitOK || err != nil || len(listed.Pinholes) != 12 {
		t.Fatalf("list --ipv6: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	var packets uint32
	for _, p := range listed.Pinholes {
		switch {
		case p.Method == nat.MethodPCP && p.Port == 21 && strings.HasPrefix(p.State, "not asked"):
		case p.Method == nat.MethodUPnP && p.State == "open" && p.Packets != nil:
			packets += *p.Packets
		default:
			t.Errorf("pinhole %s %d (%s): state %q", p.Protocol, p.Port, p.Method, p.State)
		}
	}
	t.Logf("packets through the passive pinholes, as miniupnpd counts them: %d", packets)
	// A router restart loses them: list --ipv6 says so, pinhole by pinhole.
	l.RestartRouterDaemon()
	out, errOut, _ = l.Server.Natdoctor(t, "list", "--ipv6", "--json")
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("list --ipv6 after a restart: %v\n%s%s", err, out, errOut)
	}
	for _, p := range listed.Pinholes {
		if p.Method == nat.MethodUPnP && !strings.HasPrefix(p.State, "gone") {
			t.Errorf("after miniupnpd restarted, pinhole %d is %q", p.Port, p.State)
		}
	}
	addPinholes(t, l) // opened again
	out, errOut, code = l.Server.Natdoctor(t, append([]string{"remove", "--ipv6"}, allIPv6Ports...)...)
	if code != exitOK {
		t.Fatalf("remove --ipv6: exit %d\n%s%s", code, out, errOut)
	}
	if j := l.Judge(t, lab.JudgeOptions{IPv6: true, Listings: 4}); !j.LenientFails() {
		t.Errorf("after remove --ipv6, clients still reach the server over IPv6: %s", j)
	}
	if out, _, _ := l.Server.Natdoctor(t, "list", "--ipv6", "--json"); strings.Contains(out, `"port": 21`) {
		t.Errorf("list --ipv6 still shows a pinhole:\n%s", out)
	}
}
