package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
	"github.com/natdoctor/natdoctor/report"
)

// A verdict row: a home network built one way, real clients' experience of
// it, and what natdoctor diagnose concludes. The test asserts natdoctor's
// claims against the clients, never against natdoctor itself:
//   - exit 1 with an error finding if and only if a lenient client fails;
//   - a failure of strict clients only gives pasv-private-address;
//   - the first error (or, when only strict clients fail, the warning)
//     is the row's cause: what the lab was built to get wrong.
type verdictRow struct {
	name  string
	opts  lab.Options
	setup func(t *testing.T, l *lab.Lab)
	args  []string // diagnose's arguments beyond --json, credentials and --reflector
	// noPasv leaves out --pasv: natdoctor finds the range itself.
	noPasv bool
	// config passes the server's configuration file with --ftp-config.
	config bool
	// fixSays is text the cause's fix must contain (the server's own
	// directive, say).
	fixSays string
	// publicPort is the external control port clients use (0: 21).
	publicPort int
	// noAccount runs diagnose without credentials, as a first try does.
	noAccount bool
	cause     string // the finding that names what is wrong; "" for a working network
	// warns are findings that must be there as well (a warning or info
	// the row is about, such as this-host-is-default-host).
	warns []string
}

// upnpcArgs are upnpc -r arguments that map ports to the host upnpc runs on.
func upnpcArgs(ports ...int) []string {
	args := []string{"-r"}
	for _, p := range ports {
		args = append(args, fmt.Sprint(p), "TCP")
	}
	return args
}

func allPorts() []int { return append([]int{21}, seq(lab.PassiveLow, lab.PassiveHigh)...) }

// mapUPnP maps ports to host h with upnpc, the miniupnpc client, in one run.
func mapUPnP(t *testing.T, h *lab.Host, ports ...int) {
	t.Helper()
	out := h.MustRun(t, "upnpc", upnpcArgs(ports...)...)
	if strings.Count(out, "is redirected to internal") < len(ports) {
		t.Fatalf("upnpc did not map %v:\n%s", ports, out)
	}
}

// mapPMP maps ports to the server with natpmpc (libnatpmp), port by port.
func mapPMP(t *testing.T, h *lab.Host, ports ...int) {
	t.Helper()
	for _, p := range ports {
		out := h.MustRun(t, "natpmpc", "-a", fmt.Sprint(p), fmt.Sprint(p), "tcp", "3600")
		if !strings.Contains(out, "Mapped public port") {
			t.Fatalf("natpmpc did not map %d:\n%s", p, out)
		}
	}
}

func mapAllUPnP(t *testing.T, l *lab.Lab) { mapUPnP(t, l.Server, allPorts()...) }
func mapAllPMP(t *testing.T, l *lab.Lab)  { mapPMP(t, l.Server, allPorts()...) }

var verdictRows = []verdictRow{
	{name: "IGD v2, all mapped, public PASV address", opts: lab.Options{ForcePassiveIP: true}, setup: mapAllUPnP},
	{name: "IGD v2, all mapped, private PASV address", opts: lab.Options{}, setup: mapAllUPnP, cause: report.CodePASVPrivate},
	{name: "IGD v2, all mapped, diagnose run without the account", opts: lab.Options{ForcePassiveIP: true}, setup: mapAllUPnP, noAccount: true,
		warns: []string{report.CodeFTPTLSFailed}},
	{name: "IGD v2, nothing mapped", opts: lab.Options{ForcePassiveIP: true}, cause: report.CodeMappingMissing},
	{name: "IGD v2, one passive port forgotten", opts: lab.Options{ForcePassiveIP: true},
		setup: func(t *testing.T, l *lab.Lab) { mapUPnP(t, l.Server, allPorts()[:11]...) }, cause: report.CodeMappingMissing},
	{name: "IGD v2, passive range split over two rules, one port lost between", opts: lab.Options{ForcePassiveIP: true},
		setup: func(t *testing.T, l *lab.Lab) {
			mapUPnP(t, l.Server, 21, 42000, 42001, 42002, 42003, 42004)
			mapUPnP(t, l.Server, 42006, 42007, 42008, 42009, 42010)
		}, cause: report.CodeMappingMissing},
	{name: "IGD v2, default host on over the mappings", opts: lab.Options{ForcePassiveIP: true, DefaultHost: true}, setup: mapAllUPnP,
		cause: report.CodeDefaultHost},
	{name: "IGD v2, control port mapped to another machine", opts: lab.Options{ForcePassiveIP: true},
		setup: func(t *testing.T, l *lab.Lab) {
			mapUPnP(t, l.Other, 21)
			mapUPnP(t, l.Server, seq(lab.PassiveLow, lab.PassiveHigh)...)
		}, cause: report.CodeMappingWrongHost},
	{name: "IGD v2, server uses a wider range than is mapped", opts: lab.Options{ForcePassiveIP: true, ServerPassiveHigh: 42030},
		setup: mapAllUPnP, cause: report.CodePASVOutsideRange},
	{name: "IGD v2, server greets late (reverse DNS lookups)", opts: lab.Options{ForcePassiveIP: true, ReverseDNS: true}, setup: mapAllUPnP,
		warns: []string{report.CodeFTPSlowGreeting}},
	// The FTP user's home may be entered but not read (mode 0311): logins
	// work, listings do not: "log in and then cannot list files" with no
	// network cause.
	{name: "IGD v2, all mapped, home directory not readable", opts: lab.Options{ForcePassiveIP: true},
		setup: func(t *testing.T, l *lab.Lab) {
			mapAllUPnP(t, l)
			if err := os.Chmod(filepath.Join(l.Dir, "server", "ftproot"), 0o311); err != nil {
				t.Fatal(err)
			}
		}, cause: report.CodeFTPListFailed},
	// The reflector turns this host down (its per-source limit spent by
	// earlier runs): what it refused is not checked, and the router's
	// listing vouches for the mappings.
	{name: "IGD v2, all mapped, the reflector's limit for this host spent", opts: lab.Options{ForcePassiveIP: true},
		setup: func(t *testing.T, l *lab.Lab) {
			mapAllUPnP(t, l)
			who := fmt.Sprintf("http://%s:%d/v1/whoami", l.OutsideIP(), lab.ReflectorPort)
			out := l.Server.MustRun(t, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}\n", who, who, who, who, who, who, who, who, who, who,
				who, who, who, who, who, who, who, who, who, who, who, who, who, who, who, who, who, who, who, who, who, who)
			if !strings.Contains(out, "429") {
				t.Fatalf("the reflector's limit was not reached:\n%s", out)
			}
		}},
	{name: "IGD v2, no FTP server running", opts: lab.Options{NoServerFTP: true}, setup: mapAllUPnP, cause: report.CodeFTPUnreachable},
	{name: "IGD v2, FTPS offered (self-signed), plain clients", opts: lab.Options{ForcePassiveIP: true, FTPTLS: 1}, setup: mapAllUPnP,
		warns: []string{report.CodeFTPTLSUntrusted}},
	{name: "IGD v1, all mapped", opts: lab.Options{ForcePassiveIP: true, IGDv1: true}, setup: mapAllUPnP},
	{name: "IGD v1, one passive port forgotten", opts: lab.Options{ForcePassiveIP: true, IGDv1: true},
		setup: func(t *testing.T, l *lab.Lab) { mapUPnP(t, l.Server, allPorts()[1:]...) }, cause: report.CodeMappingMissing},
	{name: "UPnP only, all mapped", opts: lab.Options{ForcePassiveIP: true, NoPMP: true}, setup: mapAllUPnP},
	{name: "NAT-PMP only (AirPort), all mapped", opts: lab.Options{ForcePassiveIP: true, NoUPnP: true}, setup: mapAllPMP},
	{name: "NAT-PMP only (AirPort), default host on over the mappings", opts: lab.Options{ForcePassiveIP: true, NoUPnP: true, DefaultHost: true},
		setup: mapAllPMP, cause: report.CodeDefaultHost},
	{name: "NAT-PMP only (AirPort), nothing mapped", opts: lab.Options{ForcePassiveIP: true, NoUPnP: true}, cause: report.CodeFTPUnreachable},
	{name: "NAT-PMP only (AirPort), private PASV address", opts: lab.Options{NoUPnP: true}, setup: mapAllPMP, cause: report.CodePASVPrivate},
	{name: "no mapping protocol, nothing mapped", opts: lab.Options{ForcePassiveIP: true, NoUPnP: true, NoPMP: true},
		cause: report.CodeNoMappingProtocol},
	{name: "default host is the server itself, nothing mapped", opts: lab.Options{ForcePassiveIP: true, DefaultHostIsServer: true},
		warns: []string{report.CodeThisHostDefault}},
	{name: "default host is the server itself, NAT-PMP only", opts: lab.Options{ForcePassiveIP: true, NoUPnP: true, DefaultHostIsServer: true},
		warns: []string{report.CodeThisHostDefault}},
	{name: "range not given: learned from the server, all mapped", opts: lab.Options{ForcePassiveIP: true}, setup: mapAllUPnP, noPasv: true},
	{name: "range not given: server uses 42000-42030, 42000-42010 mapped", opts: lab.Options{ForcePassiveIP: true, ServerPassiveHigh: 42030},
		setup: mapAllUPnP, noPasv: true, cause: report.CodeMappingMissing},
	// The same network problems on the other servers people run; their
	// configuration files are read with --ftp-config, and the fixes must
	// name each server's own setting.
	{name: "vsftpd, all mapped, public PASV address", opts: lab.Options{Server: lab.Vsftpd, ForcePassiveIP: true}, setup: mapAllUPnP, config: true},
	{name: "vsftpd, private PASV address", opts: lab.Options{Server: lab.Vsftpd}, setup: mapAllUPnP, config: true,
		cause: report.CodePASVPrivate, fixSays: "pasv_address="},
	{name: "vsftpd, server range wider than mapped", opts: lab.Options{Server: lab.Vsftpd, ForcePassiveIP: true, ServerPassiveHigh: 42030},
		setup: mapAllUPnP, cause: report.CodePASVOutsideRange, fixSays: "pasv_min_port="},
	{name: "vsftpd, home directory not readable", opts: lab.Options{Server: lab.Vsftpd, ForcePassiveIP: true},
		setup: func(t *testing.T, l *lab.Lab) {
			mapAllUPnP(t, l)
			if err := os.Chmod(filepath.Join(l.Dir, "server", "ftproot"), 0o311); err != nil {
				t.Fatal(err)
			}
		}, config: true, cause: report.CodeFTPListFailed},
	{name: "vsftpd, default host on over the mappings", opts: lab.Options{Server: lab.Vsftpd, ForcePassiveIP: true, DefaultHost: true},
		setup: mapAllUPnP, cause: report.CodeDefaultHost},
	{name: "ProFTPD, all mapped, public PASV address", opts: lab.Options{Server: lab.ProFTPD, ForcePassiveIP: true}, setup: mapAllUPnP, config: true},
	{name: "ProFTPD, private PASV address", opts: lab.Options{Server: lab.ProFTPD}, setup: mapAllUPnP, config: true,
		cause: report.CodePASVPrivate, fixSays: "MasqueradeAddress"},
	{name: "ProFTPD, server range wider than mapped", opts: lab.Options{Server: lab.ProFTPD, ForcePassiveIP: true, ServerPassiveHigh: 42030},
		setup: mapAllUPnP, cause: report.CodePASVOutsideRange, fixSays: "PassivePorts"},
	{name: "ProFTPD, greets late (UseReverseDNS, IdentLookups on)", opts: lab.Options{Server: lab.ProFTPD, ForcePassiveIP: true, ReverseDNS: true},
		setup: mapAllUPnP, config: true, warns: []string{report.CodeFTPSlowGreeting}},
	{name: "ProFTPD, one passive port lost between two rules", opts: lab.Options{Server: lab.ProFTPD, ForcePassiveIP: true},
		setup: func(t *testing.T, l *lab.Lab) {
			mapUPnP(t, l.Server, 21, 42000, 42001, 42002, 42003, 42004)
			mapUPnP(t, l.Server, 42006, 42007, 42008, 42009, 42010)
		}, cause: report.CodeMappingMissing},
	// ProFTPD never hands out the top port of PassivePorts: leaving it
	// unmapped harms no client, so it is no error.
	{name: "ProFTPD, top port of PassivePorts unmapped", opts: lab.Options{Server: lab.ProFTPD, ForcePassiveIP: true},
		setup: func(t *testing.T, l *lab.Lab) { mapUPnP(t, l.Server, allPorts()[:11]...) }},
	{name: "pyftpdlib, all mapped, public PASV address", opts: lab.Options{Server: lab.Pyftpdlib, ForcePassiveIP: true}, setup: mapAllUPnP},
	{name: "pyftpdlib, private PASV address", opts: lab.Options{Server: lab.Pyftpdlib}, setup: mapAllUPnP, cause: report.CodePASVPrivate},
	{name: "pyftpdlib, range not given: learned from the server", opts: lab.Options{Server: lab.Pyftpdlib, ForcePassiveIP: true},
		setup: mapAllUPnP, noPasv: true},
	{name: "pyftpdlib, NAT-PMP only (AirPort), default host on", opts: lab.Options{Server: lab.Pyftpdlib, ForcePassiveIP: true, NoUPnP: true, DefaultHost: true},
		setup: mapAllPMP, cause: report.CodeDefaultHost},
	// A router that refuses external port 21: users map 2121 to it.
	{name: "router refuses external port 21: 2121 mapped to 21", opts: lab.Options{ForcePassiveIP: true, DenyPorts: []int{21}},
		setup: func(t *testing.T, l *lab.Lab) {
			l.Server.MustRun(t, "upnpc", "-a", lab.ServerAddr.String(), "21", "2121", "TCP")
			mapUPnP(t, l.Server, seq(lab.PassiveLow, lab.PassiveHigh)...)
		}, publicPort: 2121, args: []string{"--public-port", "2121"}},
	{name: "router refuses external port 21: 2121 mapped, a passive port forgotten", opts: lab.Options{ForcePassiveIP: true, DenyPorts: []int{21}},
		setup: func(t *testing.T, l *lab.Lab) {
			l.Server.MustRun(t, "upnpc", "-a", lab.ServerAddr.String(), "21", "2121", "TCP")
			mapUPnP(t, l.Server, seq(lab.PassiveLow, lab.PassiveHigh-1)...)
		}, publicPort: 2121, args: []string{"--public-port", "2121"}, cause: report.CodeMappingMissing},
	{name: "passive port mapped to another machine", opts: lab.Options{ForcePassiveIP: true},
		setup: func(t *testing.T, l *lab.Lab) {
			mapUPnP(t, l.Server, allPorts()[:11]...)
			mapUPnP(t, l.Other, lab.PassiveHigh)
		}, cause: report.CodeMappingWrongHost},
}

// verdictLine is one row of the table make verdicts prints.
type verdictLine struct {
	name, clients, findings, agree string
	code                           int
}

var (
	verdictMu    sync.Mutex
	verdictTable = map[string]verdictLine{}
)

func TestLabVerdicts(t *testing.T) {
	lab.Skip(t)
	t.Cleanup(func() { printVerdicts(t) })
	for _, row := range verdictRows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			checkVerdict(t, row)
		})
	}
}

func checkVerdict(t *testing.T, row verdictRow) {
	l := lab.Start(t, row.opts)
	refl := l.StartReflector(t)
	if row.setup != nil {
		row.setup(t, l)
	}
	judged := l.Judge(t, lab.JudgeOptions{Port: row.publicPort})
	args := append([]string{"--reflector", refl}, row.args...)
	if !row.noPasv {
		args = append(args, "--pasv", labRange)
	}
	if row.config {
		args = append(args, "--ftp-config", l.ServerConfig())
	}
	var r *report.Report
	var out string
	var code int
	if row.noAccount {
		stdout, stderr, c := l.Server.Natdoctor(t, append([]string{"diagnose", "--json"}, args...)...)
		r, out, code = &report.Report{}, stdout+stderr, c
		if err := json.Unmarshal([]byte(stdout), r); err != nil {
			t.Fatalf("diagnose --json: %v\n%s", err, out)
		}
	} else {
		r, out, code = labDiagnoseAs(t, l, args...)
	}

	var errs, all []string
	for _, f := range r.Findings {
		all = append(all, f.Code+"("+string(f.Severity)+")")
		if !report.Catalogued(f) {
			t.Errorf("%s: finding %s (%s) is not in the catalogue", row.name, f.Code, f.Severity)
		}
		if f.Severity == report.SevError {
			errs = append(errs, f.Code)
		}
	}
	var problems []string
	lenient := judged.LenientFails()
	switch {
	case lenient && (code != exitProblem || len(errs) == 0):
		problems = append(problems, fmt.Sprintf("lenient clients fail but natdoctor exits %d with errors %v", code, errs))
	case !lenient && (code != exitOK || len(errs) > 0):
		problems = append(problems, fmt.Sprintf("every lenient client works but natdoctor exits %d with errors %v", code, errs))
	}
	has := func(c string) bool {
		return slices.ContainsFunc(r.Findings, func(f report.Finding) bool { return f.Code == c })
	}
	if !lenient && judged.StrictFails() && !has(report.CodePASVPrivate) {
		problems = append(problems, "strict clients fail but there is no pasv-private-address")
	}
	if !judged.StrictFails() && has(report.CodePASVPrivate) {
		problems = append(problems, "pasv-private-address although strict clients work")
	}
	switch {
	case row.cause == "" && (lenient || judged.StrictFails()):
		problems = append(problems, "the row is meant to work, but clients fail: the lab is wrong")
	case row.cause != "" && !lenient && !judged.StrictFails():
		problems = append(problems, fmt.Sprintf("the row is meant to break (%s), but every client works: the lab is wrong", row.cause))
	case lenient && len(errs) > 0 && errs[0] != row.cause:
		problems = append(problems, fmt.Sprintf("first error %s, want %s", errs[0], row.cause))
	case !lenient && row.cause != "" && !has(row.cause):
		problems = append(problems, fmt.Sprintf("no %s", row.cause))
	}
	if row.fixSays != "" && !slices.ContainsFunc(r.Findings, func(f report.Finding) bool {
		return f.Code == row.cause && strings.Contains(f.Fix, row.fixSays)
	}) {
		problems = append(problems, fmt.Sprintf("the fix of %s does not say %q", row.cause, row.fixSays))
	}
	for _, w := range row.warns {
		if !has(w) {
			problems = append(problems, "no "+w)
		}
	}
	line := verdictLine{name: row.name, clients: judged.Summary(), findings: strings.Join(all, " "), code: code, agree: "agree"}
	if len(problems) > 0 {
		line.agree = "WRONG: " + strings.Join(problems, "; ")
		t.Errorf("%s\nclients: %s\nnatdoctor exit %d: %s\n%s", strings.Join(problems, "\n"), judged, code, strings.Join(all, " "), out)
	}
	verdictMu.Lock()
	verdictTable[row.name] = line
	verdictMu.Unlock()
}

// labDiagnoseAs runs diagnose --json logged in as the lab's clients are.
func labDiagnoseAs(t *testing.T, l *lab.Lab, extra ...string) (*report.Report, string, int) {
	t.Helper()
	if !l.Anonymous() {
		return labDiagnoseRaw(t, l, extra...)
	}
	out, errOut, code := l.Server.Natdoctor(t, append([]string{"diagnose", "--json", "--anonymous"}, extra...)...)
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("diagnose --json: %v\n%s\n%s", err, out, errOut)
	}
	return &r, out + errOut, code
}

// printVerdicts prints the table (make verdicts) in the rows' order.
func printVerdicts(t *testing.T) {
	if os.Getenv("NATDOCTOR_VERDICTS") != "1" {
		return
	}
	var b strings.Builder
	fmt.Fprintln(&b, "| scenario | real clients (lftp, curl, ftplib) | natdoctor exit | findings | verdict |")
	fmt.Fprintln(&b, "|---|---|---|---|---|")
	n, ok := 0, 0
	for _, row := range verdictRows {
		v, done := verdictTable[row.name]
		if !done {
			fmt.Fprintf(&b, "| %s | not run | | | skipped |\n", row.name)
			continue
		}
		n++
		if v.agree == "agree" {
			ok++
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", v.name, v.clients, v.code, v.findings, v.agree)
	}
	fmt.Fprintf(&b, "\n%d rows, %d agree, %d wrong, %d not run\n", n, ok, n-ok, len(verdictRows)-n)
	fmt.Print(b.String())
}
