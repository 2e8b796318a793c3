package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/lab"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/report"
)

// A check row: a home network built one way, with real services on the
// server (sshd, a web server, a TLS server, a UDP echo, a silent UDP
// service standing for WireGuard), what real clients on the outside host
// get from each (ssh-keyscan, curl, socat), and what natdoctor check says.
// Asserted per port against the clients, never against natdoctor:
//   - a client reaches the server's own service (its host key, its page,
//     its echo; for the silent service: the datagram in its log) if and
//     only if natdoctor calls the port reachable, without an error; a
//     silent UDP service may be "unverified" either way, as natdoctor
//     cannot see it from outside and says so;
//   - natdoctor exits 1 if and only if a client fails;
//   - curl checking the certificate fails if and only if natdoctor warns
//     tls-certificate-untrusted (on a reachable port);
//   - the first error is the row's cause.
type checkRow struct {
	name  string
	opts  lab.Options
	other []string // services the other LAN host runs too
	setup func(t *testing.T, l *lab.Lab)
	cause string
	warns []string
}

// checkArgs are the ports every row checks, in this order.
var checkArgs = []string{"ssh", "http", "https", fmt.Sprintf("%d/udp", lab.UDPEchoPort), "wireguard"}

var allServices = []string{lab.SvcSSH, lab.SvcHTTP, lab.SvcHTTPS, lab.SvcUDPEcho, lab.SvcUDPSilent}

// mapServicesUPnP maps the rows' ports to host h with upnpc.
func mapServicesUPnP(t *testing.T, h *lab.Host) {
	t.Helper()
	out := h.MustRun(t, "upnpc", "-r", "22", "TCP", "80", "TCP", "443", "TCP", fmt.Sprint(lab.UDPEchoPort), "UDP", fmt.Sprint(lab.UDPSilentPort), "UDP")
	if strings.Count(out, "is redirected to internal") < 5 {
		t.Fatalf("upnpc did not map the ports:\n%s", out)
	}
}

// mapServicesPMP maps them with natpmpc, as an AirPort's clients do.
func mapServicesPMP(t *testing.T, h *lab.Host) {
	t.Helper()
	for _, pp := range [][2]string{{"22", "tcp"}, {"80", "tcp"}, {"443", "tcp"}, {fmt.Sprint(lab.UDPEchoPort), "udp"}, {fmt.Sprint(lab.UDPSilentPort), "udp"}} {
		out := h.MustRun(t, "natpmpc", "-a", pp[0], pp[0], pp[1], "3600")
		if !strings.Contains(out, "Mapped public port") {
			t.Fatalf("natpmpc did not map %s/%s:\n%s", pp[0], pp[1], out)
		}
	}
}

var checkRows = []checkRow{
	{name: "check: all mapped (UPnP)", setup: func(t *testing.T, l *lab.Lab) { mapServicesUPnP(t, l.Server) },
		warns: []string{report.CodeTLSUntrusted, report.CodeUDPUnverified}},
	{name: "check: nothing mapped", cause: report.CodePortNotMapped},
	{name: "check: mapped to another machine", other: allServices,
		setup: func(t *testing.T, l *lab.Lab) { mapServicesUPnP(t, l.Other) }, cause: report.CodePortMappedElse},
	{name: "check: default host on over the mappings", opts: lab.Options{DefaultHost: true}, other: allServices,
		setup: func(t *testing.T, l *lab.Lab) { mapServicesUPnP(t, l.Server) }, cause: report.CodeDefaultHost},
	{name: "check: default host is the server itself, nothing mapped", opts: lab.Options{DefaultHostIsServer: true},
		warns: []string{report.CodeThisHostDefault, report.CodePortViaDefaultHost}},
	{name: "check: NAT-PMP only (AirPort), all mapped", opts: lab.Options{NoUPnP: true},
		setup: func(t *testing.T, l *lab.Lab) { mapServicesPMP(t, l.Server) }, warns: []string{report.CodeUDPUnverified}},
	{name: "check: NAT-PMP only (AirPort), nothing mapped", opts: lab.Options{NoUPnP: true}, cause: report.CodePortUnreachable},
	{name: "check: all mapped, the server's firewall drops them from outside",
		setup: func(t *testing.T, l *lab.Lab) {
			mapServicesUPnP(t, l.Server)
			fw := fmt.Sprintf("table inet hostfw {\n chain input {\n  type filter hook input priority 0; policy accept;\n"+
				"  ip saddr != 10.0.1.0/24 tcp dport { 22, 80, 443 } drop\n  ip saddr != 10.0.1.0/24 udp dport { %d, %d } drop\n }\n}\n", lab.UDPEchoPort, lab.UDPSilentPort)
			cmd := l.Server.Command(t.Context(), "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(fw)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nft: %v\n%s", err, out)
			}
		}, cause: report.CodePortBlocked},
}

var (
	checkTableMu sync.Mutex
	checkTable   = map[string]string{}
)

func TestLabCheckVerdicts(t *testing.T) {
	lab.Skip(t)
	t.Cleanup(func() { printCheckVerdicts() })
	for _, row := range checkRows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			checkCheckRow(t, row)
		})
	}
}

// portClients asks the real clients about each of checkArgs' ports; the
// last is curl checking the certificate.
func portClients(t *testing.T, l *lab.Lab) (clients []lab.ServiceClient, strictTLS lab.ServiceClient) {
	clients = []lab.ServiceClient{
		l.ReachSSH(t, lab.SSHPort, l.Server),
		l.ReachHTTP(t, "http", lab.HTTPPort, false, l.Server),
		l.ReachHTTP(t, "https", lab.HTTPSPort, false, l.Server),
		l.ReachUDP(t, lab.UDPEchoPort, l.Server),
		l.ReachUDP(t, lab.UDPSilentPort, l.Server),
	}
	return clients, l.ReachHTTP(t, "https", lab.HTTPSPort, true, l.Server)
}

func checkCheckRow(t *testing.T, row checkRow) {
	opts := row.opts
	opts.NoOtherFTP = true
	l := lab.Start(t, opts)
	refl := l.StartReflector(t)
	l.StartServices(l.Server, allServices...)
	if len(row.other) > 0 {
		l.StartServices(l.Other, row.other...)
	}
	if row.setup != nil {
		row.setup(t, l)
	}
	clients, strict := portClients(t, l)
	out, errOut, code := l.Server.Natdoctor(t, append([]string{"check", "--json", "--reflector", refl}, checkArgs...)...)
	var r report.PortsReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("check --json: %v\n%s\n%s", err, out, errOut)
	}
	if len(r.Ports) != len(checkArgs) {
		t.Fatalf("%d ports in the report, want %d\n%s", len(r.Ports), len(checkArgs), out)
	}
	var problems []string
	anyFails := false
	var seen []string
	for i, c := range clients {
		p := r.Ports[i]
		silent := i == len(clients)-1
		hasError := slices.ContainsFunc(p.Findings, func(code string) bool {
			return slices.ContainsFunc(r.Findings, func(f report.Finding) bool { return f.Code == code && f.Severity == report.SevError })
		})
		says := p.Status
		seen = append(seen, fmt.Sprintf("%s: %s / %s", p.Port, clientWord(c.OK), says))
		switch {
		case silent && says == report.PortUnverified && !hasError:
		case c.OK && (says != report.PortReachable || hasError):
			problems = append(problems, fmt.Sprintf("%s: %s reaches the server, natdoctor says %s %v", p.Port, c.Client, says, p.Findings))
		case !c.OK && (says == report.PortReachable || !hasError):
			problems = append(problems, fmt.Sprintf("%s: %s fails (%q), natdoctor says %s %v", p.Port, c.Client, c.Output, says, p.Findings))
		}
		anyFails = anyFails || !c.OK
	}
	for _, f := range r.Findings {
		if !report.Catalogued(f) {
			t.Errorf("finding %s (%s) is not in the catalogue", f.Code, f.Severity)
		}
	}
	has := func(code string) bool {
		return slices.ContainsFunc(r.Findings, func(f report.Finding) bool { return f.Code == code })
	}
	if clients[2].OK && strict.OK == has(report.CodeTLSUntrusted) {
		problems = append(problems, fmt.Sprintf("curl checking the certificate: ok=%v, but tls-certificate-untrusted present=%v", strict.OK, has(report.CodeTLSUntrusted)))
	}
	switch {
	case anyFails && code != exitProblem:
		problems = append(problems, fmt.Sprintf("a client fails, natdoctor exits %d", code))
	case !anyFails && code != exitOK:
		problems = append(problems, fmt.Sprintf("every client works, natdoctor exits %d", code))
	}
	var errs []string
	for _, f := range r.Findings {
		if f.Severity == report.SevError {
			errs = append(errs, f.Code)
		}
	}
	switch {
	case row.cause == "" && anyFails:
		problems = append(problems, "the row is meant to work, but clients fail: the lab is wrong")
	case row.cause != "" && !anyFails:
		problems = append(problems, "the row is meant to break, but every client works: the lab is wrong")
	case row.cause != "" && (len(errs) == 0 || errs[0] != row.cause):
		problems = append(problems, fmt.Sprintf("first error %v, want %s", errs, row.cause))
	}
	for _, w := range row.warns {
		if !has(w) {
			problems = append(problems, "no "+w)
		}
	}
	var all []string
	for _, f := range r.Findings {
		all = append(all, f.Code+"("+string(f.Severity)+")")
	}
	agree := "agree"
	if len(problems) > 0 {
		agree = "WRONG: " + strings.Join(problems, "; ")
		t.Errorf("%s\nports: %s\nnatdoctor exit %d: %s\n%s\n%s", strings.Join(problems, "\n"), strings.Join(seen, "; "), code, strings.Join(all, " "), out, errOut)
	}
	checkTableMu.Lock()
	checkTable[row.name] = fmt.Sprintf("| %s | %s | %d | %s | %s |", row.name, strings.Join(seen, "; "), code, strings.Join(all, " "), agree)
	checkTableMu.Unlock()
}

func clientWord(ok bool) string {
	if ok {
		return "client ok"
	}
	return "client fails"
}

// printCheckVerdicts prints the check rows' table (make verdicts).
func printCheckVerdicts() {
	var names []string
	for _, row := range checkRows {
		names = append(names, row.name)
	}
	printTable("| scenario | per port: real client (ssh-keyscan, curl -k, socat) / natdoctor | natdoctor exit | findings | verdict |",
		names, checkTable, "check rows")
}

// printTable prints one verdict table of make verdicts (NATDOCTOR_VERDICTS=1):
// header, the rows' lines in the rows' order ("not run" for a row without
// one), then the counts. A line ends in "| agree |" when the row agreed.
func printTable(header string, names []string, lines map[string]string, what string) {
	if os.Getenv("NATDOCTOR_VERDICTS") != "1" {
		return
	}
	cols := strings.Count(header, "|") - 1
	var b strings.Builder
	fmt.Fprintln(&b, header)
	fmt.Fprintln(&b, "|"+strings.Repeat("---|", cols))
	n, ok := 0, 0
	for _, name := range names {
		line, done := lines[name]
		if !done {
			fmt.Fprintf(&b, "| %s | not run |%s skipped |\n", name, strings.Repeat(" |", cols-3))
			continue
		}
		n++
		if strings.HasSuffix(line, "| agree |") {
			ok++
		}
		fmt.Fprintln(&b, line)
	}
	fmt.Fprintf(&b, "\n%d %s, %d agree, %d wrong, %d not run\n", n, what, ok, n-ok, len(names)-n)
	fmt.Print(b.String())
}

// TestLabServiceMappings: add, keep and remove take --service. What they
// map, real clients use from the outside host: ssh-keyscan gets the
// server's host key, the server's silent UDP service logs socat's datagram;
// after remove, neither gets through.
func TestLabServiceMappings(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{NoOtherFTP: true})
	l.StartServices(l.Server, lab.SvcSSH, lab.SvcUDPSilent)
	bin := lab.Natdoctor(t)
	_, errOut, code := l.Server.Natdoctor(t, "add", "--service", "ssh", "--service", "wireguard")
	if code != exitOK {
		t.Fatalf("add --service: exit %d\n%s", code, errOut)
	}
	want := []lab.Forward{{Proto: "tcp", External: 22, Target: "10.0.1.2:22"}, {Proto: "udp", External: 51820, Target: "10.0.1.2:51820"}}
	sameForwards := func(fs []lab.Forward) bool {
		return len(fs) == len(want) && slices.ContainsFunc(fs, func(f lab.Forward) bool { return f == want[0] }) &&
			slices.ContainsFunc(fs, func(f lab.Forward) bool { return f == want[1] })
	}
	if fs := l.Forwards(t); !sameForwards(fs) {
		t.Fatalf("add --service ssh --service wireguard mapped %v, want %v", fs, want)
	}
	if c := l.ReachSSH(t, lab.SSHPort, l.Server); !c.OK {
		t.Errorf("after add: %s: %q", c.Client, c.Output)
	}
	if c := l.ReachUDP(t, lab.UDPSilentPort, l.Server); !c.OK {
		t.Errorf("after add: %s did not arrive", c.Client)
	}
	if _, errOut, code := l.Server.Natdoctor(t, "remove", "--service", "ssh", "--service", "wireguard"); code != exitOK {
		t.Fatalf("remove --service: exit %d\n%s", code, errOut)
	}
	if fs := l.Forwards(t); len(fs) != 0 {
		t.Fatalf("remove --service left %v", fs)
	}
	if c := l.ReachSSH(t, lab.SSHPort, l.Server); c.OK {
		t.Errorf("after remove: %s still reaches the server", c.Client)
	}
	if c := l.ReachUDP(t, lab.UDPSilentPort, l.Server); c.OK {
		t.Errorf("after remove: %s still arrives", c.Client)
	}

	// keep --service wireguard maps it, and removes it on SIGTERM.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := l.Server.Command(ctx, bin, "keep", "--service", "wireguard", "--lease", "1m")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	if fs, ok := l.WaitForwards(t, time.Minute, func(fs []lab.Forward) bool { return len(fs) == 1 && fs[0] == want[1] }); !ok {
		t.Fatalf("keep --service wireguard: %v\n%s", fs, stderr.String())
	}
	if c := l.ReachUDP(t, lab.UDPSilentPort, l.Server); !c.OK {
		t.Errorf("under keep: %s did not arrive", c.Client)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("keep after SIGTERM: %v\n%s", err, stderr.String())
	}
	if fs := l.Forwards(t); len(fs) != 0 {
		t.Errorf("keep left %v after SIGTERM", fs)
	}
}

// TestLabCheckOtherServer: check --server looks at another LAN host: no
// canary (natdoctor cannot listen there), the LAN view dials that host.
func TestLabCheckOtherServer(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{NoOtherFTP: true, SecureModeOff: true})
	refl := l.StartReflector(t)
	l.StartServices(l.Other, lab.SvcSSH, lab.SvcHTTP)
	l.Other.MustRun(t, "upnpc", "-r", "22", "TCP")
	ssh, web := l.ReachSSH(t, lab.SSHPort, l.Other), l.ReachHTTP(t, "http", lab.HTTPPort, false, l.Other)
	if !ssh.OK || web.OK {
		t.Fatalf("lab: want ssh reachable and http not: %v %v", ssh, web)
	}
	out, errOut, code := l.Server.Natdoctor(t, "check", "ssh", "http", "--server", lab.DefaultHostLAN.String(), "--reflector", refl, "--json")
	var r report.PortsReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("check --json: %v\n%s\n%s", err, out, errOut)
	}
	if code != exitProblem || r.Ports[0].Status != report.PortReachable || r.Ports[1].Status != report.PortUnreachable ||
		!slices.Equal(r.Ports[1].Findings, []string{report.CodePortNotMapped}) || r.Observations.ThisHost {
		t.Errorf("exit %d, ports %+v\n%s", code, r.Ports, out[strings.Index(out, `"observations"`):])
	}
	for _, p := range r.Observations.Ports {
		if p.Canary {
			t.Errorf("%s: natdoctor listened on this host for another host's port", p.Port)
		}
	}
}

// TestLabCheckDoubleNAT: behind carrier-grade NAT the router's external
// address is shared (100.64/10): no mapping makes the server reachable
// from the internet. The lab's outside host stands for the carrier's
// network, so clients there would get in; what the test holds natdoctor
// to is the address class, and the reflector's refusal of a shared source.
func TestLabCheckDoubleNAT(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{NoOtherFTP: true, CGNAT: true})
	refl := l.StartReflector(t)
	l.StartServices(l.Server, lab.SvcSSH)
	// miniupnpd itself refuses to map with a shared WAN address.
	out, errOut, code := l.Server.Natdoctor(t, "check", "ssh", "--reflector", refl, "--json")
	var r report.PortsReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("check --json: %v\n%s\n%s", err, out, errOut)
	}
	if code != exitProblem || len(r.Findings) == 0 || r.Findings[0].Code != report.CodeDoubleNAT {
		t.Errorf("exit %d, findings %v, want double-nat first\n%s", code, r.Findings, out)
	}
	if !slices.ContainsFunc(r.Unchecked, func(u report.Unchecked) bool { return u.Check == "outside" }) || r.Ports[0].Status == report.PortReachable {
		t.Errorf("the reflector refuses a shared source, so nothing is checked from outside: %+v %+v", r.Unchecked, r.Ports)
	}
}

// TestLabCheckIPv6: the same question over IPv6, where the router
// translates nothing and its firewall drops inbound connections unless a
// port is opened for the server (a pinhole made in the router by hand).
// Real clients on the outside host (ssh-keyscan -6, curl -6) decide; the
// reflector runs with --allow-private, as the lab's prefixes are
// documentation ones. The last row is "IPv4 impossible (carrier-grade
// NAT), IPv6 works".
func TestLabCheckIPv6(t *testing.T) {
	lab.Skip(t)
	for _, tc := range []struct {
		name string
		opts lab.Options
		ok   bool
	}{
		{"IPv6, the router's firewall drops inbound", lab.Options{IPv6: true, NoOtherFTP: true}, false},
		{"IPv6, 22 and 80 opened for the server", lab.Options{IPv6: true, NoOtherFTP: true, OpenIPv6: []string{"tcp:22", "tcp:80"}}, true},
		{"IPv4 behind carrier-grade NAT, IPv6 opened", lab.Options{IPv6: true, CGNAT: true, NoOtherFTP: true, OpenIPv6: []string{"tcp:22", "tcp:80"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := lab.Start(t, tc.opts)
			l.StartReflector(t, "--allow-private")
			l.StartServices(l.Server, lab.SvcSSH, lab.SvcHTTP)
			ssh, web := l.ReachSSH6(t, lab.Server6, l.Server), l.ReachHTTP6(t, lab.Server6, lab.HTTPPort, l.Server)
			if ssh.OK != tc.ok || web.OK != tc.ok {
				t.Fatalf("lab: clients %v %v, want ok=%v", ssh, web, tc.ok)
			}
			refl6 := fmt.Sprintf("http://[%s]:%d", lab.Outside6, lab.ReflectorPort)
			out, errOut, code := l.Server.Natdoctor(t, "check", "ssh", "http", "--ipv6", "--reflector", refl6, "--json")
			var r report.PortsReport
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("check --ipv6 --json: %v\n%s\n%s", err, out, errOut)
			}
			want, wantCode, wantFinding := report.PortReachable, exitOK, ""
			if !tc.ok {
				want, wantCode, wantFinding = report.PortUnreachable, exitProblem, report.CodeIPv6Filtered
			}
			for _, p := range r.Ports {
				if p.Status != want || (wantFinding != "" && !slices.Contains(p.Findings, wantFinding)) {
					t.Errorf("%s: %s %v, want %s %s (clients: %v %v)", p.Port, p.Status, p.Findings, want, wantFinding, ssh, web)
				}
			}
			if code != wantCode || r.Observations.Server != lab.Server6 || r.Observations.Family != "ipv6" {
				t.Errorf("exit %d (want %d), server %v, family %q\n%s", code, wantCode, r.Observations.Server, r.Observations.Family, out)
			}
			if tc.opts.CGNAT {
				// Over IPv4 the same ports are impossible from the internet.
				out, _, code := l.Server.Natdoctor(t, "check", "ssh", "http", "--reflector", fmt.Sprintf("http://%s:%d", l.OutsideIP(), lab.ReflectorPort), "--json")
				var r4 report.PortsReport
				if err := json.Unmarshal([]byte(out), &r4); err != nil || code != exitProblem || len(r4.Findings) == 0 || r4.Findings[0].Code != report.CodeDoubleNAT {
					t.Errorf("IPv4 behind CGNAT: exit %d, %v, findings %v", code, err, r4.Findings)
				}
			}
		})
	}
}

// TestLabPinholes: add --ipv6 opens the router's IPv6 firewall for this
// host (UPnP WANIPv6FirewallControl on the real miniupnpd), remove --ipv6
// closes it again. curl -6 from the outside host decides, and check --ipv6
// agrees with it at each step.
func TestLabPinholes(t *testing.T) {
	lab.Skip(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{IPv6: true, NoOtherFTP: true})
	l.StartReflector(t, "--allow-private")
	l.StartServices(l.Server, lab.SvcHTTPAlt, lab.SvcHTTP)
	refl6 := fmt.Sprintf("http://[%s]:%d", lab.Outside6, lab.ReflectorPort)
	status := func(step string, wantOK bool) {
		t.Helper()
		c := l.ReachHTTP6(t, lab.Server6, lab.HTTPAltPort, l.Server)
		if c.OK != wantOK {
			t.Fatalf("%s: %s ok=%v, want %v", step, c.Client, c.OK, wantOK)
		}
		out, _, _ := l.Server.Natdoctor(t, "check", "8080", "--ipv6", "--reflector", refl6, "--json")
		var r report.PortsReport
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Ports) != 1 {
			t.Fatalf("%s: check --ipv6: %v\n%s", step, err, out)
		}
		if got := r.Ports[0].Status == report.PortReachable; got != wantOK {
			t.Errorf("%s: curl -6 ok=%v, check --ipv6 says %s %v", step, wantOK, r.Ports[0].Status, r.Ports[0].Findings)
		}
	}
	status("before", false)
	out, errOut, code := l.Server.Natdoctor(t, "add", "--ipv6", "8080", "--lease", "10m")
	if code != exitOK || !strings.Contains(out, "pinhole") {
		t.Fatalf("add --ipv6 8080: exit %d\n%s%s", code, out, errOut)
	}
	status("after add --ipv6", true)
	if out, _, code := l.Server.Natdoctor(t, "list", "--ipv6", "--json"); code != exitOK || !strings.Contains(out, `"port": 8080`) {
		t.Errorf("list --ipv6: exit %d\n%s", code, out)
	}
	// Port 80: miniupnpd opens no UPnP pinhole below 1024 (606); PCP, a
	// MAP for the server's IPv6 address, does.
	web := func(want bool) {
		t.Helper()
		if c := l.ReachHTTP6(t, lab.Server6, lab.HTTPPort, l.Server); c.OK != want {
			t.Errorf("%s ok=%v, want %v", c.Client, c.OK, want)
		}
	}
	web(false)
	out, errOut, code = l.Server.Natdoctor(t, "add", "--ipv6", "80")
	if code != exitOK || !strings.Contains(out, "by PCP") {
		t.Errorf("add --ipv6 80: exit %d\n%s%s", code, out, errOut)
	}
	web(true)
	status("with 80 open too", true)
	if out, errOut, code := l.Server.Natdoctor(t, "remove", "--ipv6", "80"); code != exitOK {
		t.Errorf("remove --ipv6 80: exit %d\n%s%s", code, out, errOut)
	}
	web(false)
	if out, errOut, code := l.Server.Natdoctor(t, "remove", "--ipv6", "8080"); code != exitOK {
		t.Fatalf("remove --ipv6 8080: exit %d\n%s%s", code, out, errOut)
	}
	status("after remove --ipv6", false)
	if chain := l.Router.MustRun(t, "nft", "list", "chain", "inet", "filter", "miniupnpd"); strings.Contains(chain, "accept") {
		t.Errorf("a pinhole is left:\n%s", chain)
	}
}

// TestLabKeepPinholes: keep --ipv6 opens the pinhole, opens it again after
// the router restarts (miniupnpd forgets its pinholes), and closes it on
// SIGTERM. curl -6 from the outside host decides each step.
func TestLabKeepPinholes(t *testing.T) {
	lab.Skip(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{IPv6: true, NoOtherFTP: true})
	l.StartServices(l.Server, lab.SvcHTTPAlt)
	bin := lab.Natdoctor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := l.Server.Command(ctx, bin, "keep", "--ipv6", "8080", "--lease", "2m", "--check", "1s")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	reach := func(want bool, within time.Duration) bool {
		deadline := time.Now().Add(within)
		for {
			if l.ReachHTTP6(t, lab.Server6, lab.HTTPAltPort, l.Server).OK == want {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(200 * time.Millisecond) // polling what a real client sees, bounded by within
		}
	}
	if !reach(true, time.Minute) {
		t.Fatalf("keep --ipv6 did not open 8080:\n%s", stderr.String())
	}
	// A router restart: miniupnpd stops (its pinholes go with it), then
	// starts afresh and knows none of them.
	l.StopRouterDaemon()
	if !reach(false, 10*time.Second) {
		t.Fatalf("the stopped router kept the pinhole: the test proves nothing")
	}
	l.StartRouterDaemon()
	if !reach(true, time.Minute) {
		t.Fatalf("keep --ipv6 did not open 8080 again after the router restarted:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("keep --ipv6 after SIGTERM: %v\n%s", err, stderr.String())
	}
	if !reach(false, 10*time.Second) {
		t.Errorf("the pinhole stays after SIGTERM:\n%s", stderr.String())
	}
	for _, ev := range []string{"added", "lost", "restored", "removed"} {
		if !strings.Contains(stderr.String(), ev) {
			t.Errorf("no %q event:\n%s", ev, stderr.String())
		}
	}
}

// TestLabCheckFTP: check of port 21 walks the FTP server from outside as
// far as it can without an account (greeting, FEAT, AUTH TLS) and judges
// it with diagnose's server rules; lftp, curl and ftplib on the outside
// host log in and list, so the port is reachable and no error is found.
func TestLabCheckFTP(t *testing.T) {
	lab.Skip(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{ForcePassiveIP: true, NoOtherFTP: true})
	refl := l.StartReflector(t)
	mapAllUPnP(t, l)
	if j := l.Judge(t, lab.JudgeOptions{}); j.LenientFails() {
		t.Fatalf("lab: clients fail: %v", j)
	}
	out, errOut, code := l.Server.Natdoctor(t, "check", "ftp", "--reflector", refl, "--json")
	var r report.PortsReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("check ftp --json: %v\n%s\n%s", err, out, errOut)
	}
	p := r.Observations.Ports[0]
	if code != exitOK || r.Ports[0].Status != report.PortReachable || p.FTP == nil || p.FTP.Reached != probe.OK {
		t.Fatalf("exit %d, port %+v, walk %+v\n%s", code, r.Ports[0], p.FTP, out)
	}
	if !slices.ContainsFunc(r.Findings, func(f report.Finding) bool { return strings.HasPrefix(f.Code, "ftp-") }) ||
		!strings.Contains(r.Ports[0].Summary, "natdoctor diagnose") {
		t.Errorf("the FTP server's walk is not judged: %v %q", r.Findings, r.Ports[0].Summary)
	}
}

// TestLabDiscoverIPv6Firewall: on a host with an IPv6 default route,
// discover asks the real miniupnpd's IPv6 firewall service what it allows
// (miniupnpd: on, pinholes allowed; the rules for other answers are unit
// tests, as no lab router says otherwise).
func TestLabDiscoverIPv6Firewall(t *testing.T) {
	lab.Skip(t)
	t.Parallel()
	l := lab.Start(t, lab.Options{IPv6: true, NoOtherFTP: true})
	out, errOut, code := l.Server.Natdoctor(t, "discover")
	if code != exitOK || !strings.Contains(out, "IPv6 firewall  on, pinholes allowed (for "+lab.Server6.String()) {
		t.Errorf("discover: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = l.Server.Natdoctor(t, "discover", "--json")
	var res struct {
		IPv6Firewall *struct {
			Enabled, PinholesAllowed bool
		} `json:"ipv6_firewall"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.IPv6Firewall == nil || !res.IPv6Firewall.Enabled {
		t.Errorf("discover --json: %v %+v\n%s", err, res.IPv6Firewall, out)
	}
}
