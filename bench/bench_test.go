//go:build linux

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/lab"
)

// Row is one comparison.
type Row struct {
	Name         string  `json:"name"`
	Natdoctor    float64 `json:"natdoctor_seconds"`
	Peer         string  `json:"peer"`
	PeerSeconds  float64 `json:"peer_seconds"`
	Ratio        float64 `json:"ratio_peer_over_natdoctor"`
	Target       string  `json:"target"`
	Met          bool    `json:"met"`
	Note         string  `json:"note,omitempty"`
	NatdoctorReq float64 `json:"natdoctor_requests_per_port,omitempty"`
	PeerReq      float64 `json:"peer_requests_per_port,omitempty"`
}

func median(xs []time.Duration) time.Duration {
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// timed runs a command in host h, bounded by limit, and returns its duration
// and whether it hit the bound.
func timed(t *testing.T, h *lab.Host, limit time.Duration, name string, args ...string) (time.Duration, bool, *os.ProcessState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := h.Command(ctx, name, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if ctx.Err() != nil {
		return d, true, cmd.ProcessState
	}
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	return d, false, cmd.ProcessState
}

// runs times a command n times after one warm-up and returns the median.
func runs(t *testing.T, n int, h *lab.Host, limit time.Duration, name string, args ...string) time.Duration {
	t.Helper()
	timed(t, h, limit, name, args...)
	var ds []time.Duration
	for i := 0; i < n; i++ {
		d, _, _ := timed(t, h, limit, name, args...)
		ds = append(ds, d)
	}
	return median(ds)
}

// runsOK is runs for a command that must succeed each time: a run that
// failed would time something else.
func runsOK(t *testing.T, n int, h *lab.Host, limit time.Duration, name string, args ...string) time.Duration {
	t.Helper()
	var ds []time.Duration
	for i := 0; i <= n; i++ {
		d, timedOut, st := timed(t, h, limit, name, args...)
		if timedOut || st == nil || st.ExitCode() != 0 {
			t.Errorf("run %d of %s %v failed (%v)", i, name, args, st)
		}
		if i > 0 { // the first warms up
			ds = append(ds, d)
		}
	}
	return median(ds)
}

var requestsRE = regexp.MustCompile(`trace: (\d+) UPnP requests to the router`)

// ndRequests runs natdoctor with -v and returns how many UPnP requests it
// says it sent.
func ndRequests(t *testing.T, h *lab.Host, bin string, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := h.Command(ctx, bin, append(args, "-v", "--timeout", "5m")...).CombinedOutput()
	if err != nil {
		t.Fatalf("natdoctor %v failed: %v\n%s", args, err, out)
	}
	m := requestsRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("natdoctor %v printed no request count:\n%s", args, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// upnpcRequests counts SOAP requests in miniupnpd's log (upnpc opens a new
// connection for each request, and miniupnpd logs each one).
func upnpcRequests(l *lab.Lab) int { return strings.Count(l.RouterLog(), "SOAPAction:") }

func portArgs(lo, hi int) []string {
	var a []string
	for p := lo; p <= hi; p++ {
		a = append(a, fmt.Sprint(p), "TCP")
	}
	return a
}

// keepRequestsBefore is what natdoctor keep 21 42000-42010 (1 h lease,
// 30 s checks) sent to the lab's miniupnpd in an hour at commit 884df24,
// which planned and re-added every mapping at every check: 65 requests in
// its first 95 s at the real cadence (4 rounds, 16 each: a listing, 12
// adds, a listing), so 120 rounds an hour make 1,950. (On this bench's
// scaled clock it showed 1,057: its rounds took longer than the 1 s
// check, so fewer fit in the scaled hour; the new keep's rounds are one
// request and scale faithfully.)
const keepRequestsBefore = 1950

func TestBench(t *testing.T) {
	if os.Getenv("NATDOCTOR_BENCH") != "1" {
		t.Skip("set NATDOCTOR_BENCH=1 (make bench)")
	}
	bin := lab.Natdoctor(t)
	// NATDOCTOR_BENCH_ROWS picks rows by name (discovery, silent, map,
	// list, probe, igd1, igd2, remove, keep, check; comma-separated); unset runs
	// them all.
	only := os.Getenv("NATDOCTOR_BENCH_ROWS")
	want := func(name string) bool {
		return only == "" || slices.Contains(strings.Split(only, ","), name)
	}
	var rows []Row
	add := func(r Row) {
		if r.Natdoctor > 0 {
			r.Ratio = r.PeerSeconds / r.Natdoctor
		}
		rows = append(rows, r)
		t.Logf("%+v", r)
	}

	// 1. Discovery on a healthy router.
	if want("discovery") {
		l := lab.Start(t, lab.Options{})
		nd := runs(t, 5, l.Server, time.Minute, bin, "discover")
		// A first run: no Location cached from an earlier one, so SSDP.
		first := runs(t, 5, l.Server, time.Minute, "sh", "-c", `rm -f "$NATDOCTOR_STATE_DIR/upnp-location" && exec "$0" discover`, bin)
		peer := runs(t, 3, l.Server, time.Minute, "upnpc", "-s")
		r := Row{Name: "discovery (healthy router, Location cached by an earlier run)", Natdoctor: nd.Seconds(), Peer: "upnpc -s", PeerSeconds: peer.Seconds(), Target: ">= 20x faster"}
		r.Met = peer >= 20*nd
		add(r)
		r = Row{Name: "discovery (healthy router, first run: SSDP)", Natdoctor: first.Seconds(), Peer: "upnpc -s", PeerSeconds: peer.Seconds(), Target: ">= 10x faster"}
		r.Met = peer >= 10*first
		r.Note = "miniupnpd answers an M-SEARCH 50 ms late at the least (its anti-flood delay): most of a first run's time is that wait"
		add(r)
	}
	// 2. Silent gateway.
	if want("silent") {
		l := lab.Start(t, lab.Options{SilentGateway: true})
		nd := runs(t, 3, l.Server, time.Minute, bin, "discover")
		const bound = 20 * time.Second
		peer, hit, _ := timed(t, l.Server, bound, "natpmpc")
		r := Row{Name: "verdict on a silent gateway", Natdoctor: nd.Seconds(), Peer: "natpmpc", PeerSeconds: peer.Seconds(), Target: "natdoctor < 2 s"}
		if hit {
			r.Note = fmt.Sprintf("natpmpc was stopped at the %v bound (RFC 6886 retries run about 128 s)", bound)
		}
		r.Met = nd < 2*time.Second
		add(r)
	}
	// 3. Mapping 12 and 100 ports, add then remove. (200, as the issue
	// asked, crashes the lab's miniupnpd 2.3.1: heap corruption while it
	// reads back its nftables rules.)
	for _, tc := range []struct {
		name   string
		lo, hi int
		n      int
	}{{"map+unmap 21 + 42000-42010 (12 ports)", 42000, 42010, 3}, {"map+unmap 100 ports", 20000, 20099, 1}} {
		if !want("map") {
			break
		}
		l := lab.Start(t, lab.Options{})
		spec := fmt.Sprintf("%d-%d", tc.lo, tc.hi)
		ports := tc.hi - tc.lo + 1
		if tc.lo == 42000 {
			ports++
		}
		ndArgs := []string{spec}
		upArgs := portArgs(tc.lo, tc.hi)
		if tc.lo == 42000 {
			ndArgs = append([]string{"21"}, ndArgs...)
			upArgs = append([]string{"21", "TCP"}, upArgs...)
		}
		var nds, peers []time.Duration
		var ndReq, peerReq int
		peerHit := false
		for i := 0; i < tc.n; i++ {
			start := time.Now()
			ndReq = ndRequests(t, l.Server, bin, append([]string{"add"}, ndArgs...)...)
			ndReq += ndRequests(t, l.Server, bin, append([]string{"remove"}, ndArgs...)...)
			nds = append(nds, time.Since(start))
			if fs := l.Forwards(t); len(fs) != 0 {
				t.Fatalf("natdoctor left %d forwards", len(fs))
			}
			before := upnpcRequests(l)
			start = time.Now()
			// upnpc needs about half an hour for 200 ports here: bound it and
			// report the bound as a lower limit.
			_, hit, _ := timed(t, l.Server, 8*time.Minute, "upnpc", append([]string{"-r"}, upArgs...)...)
			if hit {
				peerHit = true
			} else {
				var del []string
				for j := 0; j < len(upArgs); j += 2 {
					del = append(del, upArgs[j])
				}
				// upnpc -d takes one mapping per call.
				for _, p := range del {
					timed(t, l.Server, time.Minute, "upnpc", "-d", p, "TCP")
				}
			}
			peers = append(peers, time.Since(start))
			peerReq = upnpcRequests(l) - before
		}
		r := Row{Name: tc.name, Natdoctor: median(nds).Seconds(), Peer: "upnpc -r, then upnpc -d per port (discovery on every call)", PeerSeconds: median(peers).Seconds(),
			NatdoctorReq: float64(ndReq) / float64(2*ports), PeerReq: float64(peerReq) / float64(2*ports)}
		if ports >= 100 {
			r.Target = ">= 2x faster, one request per port"
			r.Met = median(peers) >= 2*median(nds)
		} else {
			r.Target = "feels instant: add and remove each well under 2 s"
			r.Met = median(nds) < 3*time.Second
		}
		if peerHit {
			r.Peer += " (stopped at its 8 min bound: the ratio is a lower limit)"
		}
		r.Note = "requests per port: natdoctor's own count (-v), upnpc's from miniupnpd's log; add and remove together, natdoctor's include discovery and one lookup per command"
		add(r)
		if tc.lo != 42000 {
			continue
		}
		// The strongest upnpc a user would run: discovery skipped (-u URL),
		// every port in one -r, the range removed in one -N.
		rootURL := fmt.Sprintf("http://%s:%d/rootDesc.xml", lab.RouterLANAddr, lab.UPnPHTTPPort)
		var strong []time.Duration
		strongReq := 0
		for i := 0; i < tc.n; i++ {
			before := upnpcRequests(l)
			start := time.Now()
			timed(t, l.Server, time.Minute, "upnpc", append([]string{"-u", rootURL, "-r"}, upArgs...)...)
			timed(t, l.Server, time.Minute, "upnpc", "-u", rootURL, "-N", fmt.Sprint(tc.lo), fmt.Sprint(tc.hi), "TCP")
			timed(t, l.Server, time.Minute, "upnpc", "-u", rootURL, "-d", "21", "TCP")
			strong = append(strong, time.Since(start))
			strongReq = upnpcRequests(l) - before
			if fs := l.Forwards(t); len(fs) != 0 {
				t.Fatalf("upnpc left %d forwards", len(fs))
			}
		}
		add(Row{Name: tc.name + ", upnpc at its strongest", Natdoctor: median(nds).Seconds(),
			Peer: "upnpc -u URL -r (all ports), -N (the range), -d 21", PeerSeconds: median(strong).Seconds(),
			NatdoctorReq: float64(ndReq) / float64(2*ports), PeerReq: float64(strongReq) / float64(2*ports),
			Target: "no slower than upnpc at its strongest", Met: median(nds) <= median(strong)})
	}
	// 4. Listing 100 mappings.
	if want("list") {
		l := lab.Start(t, lab.Options{})
		ndRequests(t, l.Server, bin, "add", "20000-20099")
		nd := runs(t, 3, l.Server, 5*time.Minute, bin, "list", "--timeout", "5m")
		ndReq := ndRequests(t, l.Server, bin, "list")
		before := upnpcRequests(l)
		peer, hit, _ := timed(t, l.Server, 5*time.Minute, "upnpc", "-l")
		r := Row{Name: "list 100 mappings", Natdoctor: nd.Seconds(), Peer: "upnpc -l", PeerSeconds: peer.Seconds(), Target: ">= 10x faster",
			NatdoctorReq: float64(ndReq) / 100, PeerReq: float64(upnpcRequests(l)-before) / 100}
		if hit {
			r.Note = "upnpc -l was stopped at the 5 min bound"
		}
		r.Met = peer >= 10*nd
		add(r)
	}
	// 5. Outside probe of the passive range, half of it dead.
	if want("probe") {
		l := lab.Start(t, lab.Options{})
		refl := l.StartReflector(t)
		timed(t, l.Server, time.Minute, bin, "add", "21", "42000-42005")
		cmd := l.Server.Command(context.Background(), bin, "diagnose", "--json", "--pasv", "42000-42010", "--reflector", refl)
		start := time.Now()
		out, _ := cmd.Output()
		el := time.Since(start)
		var rep struct {
			Observations struct {
				Outside struct {
					Elapsed int64 `json:"elapsed_ns"`
				} `json:"outside"`
			} `json:"observations"`
		}
		_ = json.Unmarshal(out, &rep)
		seq := 11 * 3 * time.Second
		r := Row{Name: "diagnose with reflector, 11 passive ports (5 dead)", Natdoctor: el.Seconds(), Peer: "11 dial timeouts in a row (3 s each)",
			PeerSeconds: seq.Seconds(), Target: "about one dial timeout for the ports, not eleven"}
		r.Met = el < 2*3*time.Second+4*time.Second
		r.Note = fmt.Sprintf("outside checks took %v in all", time.Duration(rep.Observations.Outside.Elapsed).Round(time.Millisecond))
		add(r)

		// 6. Resources.
		st, err := os.Stat(bin)
		if err != nil {
			t.Fatal(err)
		}
		// GNU time reports natdoctor's own peak RSS (KiB), whatever ip netns exec does.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		tout, _ := l.Server.Command(ctx, "/usr/bin/time", "-f", "maxrss=%M", bin, "diagnose", "--pasv", "42000-42010", "--reflector", refl).CombinedOutput()
		cancel()
		var rss int64
		if m := regexp.MustCompile(`maxrss=(\d+)`).FindStringSubmatch(string(tout)); m != nil {
			rss, _ = strconv.ParseInt(m[1], 10, 64)
		}
		add(Row{Name: "binary size (MB)", Natdoctor: float64(st.Size()) / 1e6, Target: "< 20 MB", Met: st.Size() < 20e6,
			Note: "go build without -ldflags=-s -w; make build strips it"})
		add(Row{Name: "peak RSS of diagnose (MB)", Natdoctor: float64(rss) / 1024, Target: "< 40 MB", Met: rss < 40*1024})
	}

	// 7. diagnose on a healthy router with a busy table (IGD v1 and v2):
	// what it asks against the whole-table listing it used to make.
	for _, v1 := range []bool{true, false} {
		name, target, limit := "igd2", "< 0.5 s (issue 19)", 500*time.Millisecond
		if v1 {
			name, target, limit = "igd1", "< 1 s (issue 19; issue 14: < 1.5 s)", time.Second
		}
		if !want(name) {
			continue
		}
		l := lab.Start(t, lab.Options{IGDv1: v1, ForcePassiveIP: true})
		// One source, many runs: the reflector's per-source limit (30 at
		// once, then 2 a second: about 4 diagnoses) would turn the later
		// runs down and time a run that checked nothing.
		refl := l.StartReflector(t, "--burst", "1000", "--rate", "100")
		timed(t, l.Server, time.Minute, "upnpc", append([]string{"-r"}, portArgs(21, 21)...)...)
		timed(t, l.Server, time.Minute, "upnpc", append([]string{"-r"}, portArgs(42000, 42010)...)...)
		timed(t, l.Other, 5*time.Minute, "upnpc", append([]string{"-r"}, portArgs(50000, 50059)...)...) // other devices' mappings
		// As a user runs it: with the account, so the walk logs in and lists.
		diag := []string{"LAB_FTP_PW=" + lab.FTPPassword, bin, "diagnose", "--user", lab.FTPUser, "--password-env", "LAB_FTP_PW",
			"--pasv", "42000-42010", "--reflector", refl}
		if _, _, st := timed(t, l.Server, time.Minute, "env", diag...); st == nil || st.ExitCode() != 0 {
			t.Errorf("diagnose on the healthy %s lab did not exit 0 (%v): the row would time a failing run", name, st)
		}
		before := upnpcRequests(l)
		nd := runsOK(t, 5, l.Server, time.Minute, "env", diag...)
		req := float64(upnpcRequests(l)-before) / 6 // the warm-up and 5 runs
		walk := runs(t, 3, l.Server, time.Minute, bin, "list", "--timeout", "1m")
		r := Row{Name: fmt.Sprintf("diagnose, healthy IGD v%d router, 72 mappings in its table (median of 5)", map[bool]int{true: 1, false: 2}[v1]), Natdoctor: nd.Seconds(),
			Peer: "the whole-table listing diagnose used to make (natdoctor list)", PeerSeconds: walk.Seconds(),
			Target: target, Met: nd < limit}
		r.Note = fmt.Sprintf("%.1f router requests (SOAP, miniupnpd's log) per diagnose", req)
		add(r)
	}

	// 8. Removing 21 + 42000-42010 on IGD v2 against upnpc at its
	// strongest: discovery skipped (-u URL), the range in one -N.
	if want("remove") {
		l := lab.Start(t, lab.Options{})
		rootURL := fmt.Sprintf("http://%s:%d/rootDesc.xml", lab.RouterLANAddr, lab.UPnPHTTPPort)
		var nds, peers []time.Duration
		var ndReq, peerReq int
		for i := 0; i < 3; i++ {
			timed(t, l.Server, time.Minute, bin, "add", "21", "42000-42010")
			before := upnpcRequests(l)
			start := time.Now()
			timed(t, l.Server, time.Minute, bin, "remove", "21", "42000-42010")
			nds = append(nds, time.Since(start))
			ndReq = upnpcRequests(l) - before
			if fs := l.Forwards(t); len(fs) != 0 {
				t.Fatalf("natdoctor remove left %v", fs)
			}
			timed(t, l.Server, time.Minute, bin, "add", "21", "42000-42010")
			before = upnpcRequests(l)
			start = time.Now()
			timed(t, l.Server, time.Minute, "upnpc", "-u", rootURL, "-N", "42000", "42010", "TCP")
			timed(t, l.Server, time.Minute, "upnpc", "-u", rootURL, "-d", "21", "TCP")
			peers = append(peers, time.Since(start))
			peerReq = upnpcRequests(l) - before
			if fs := l.Forwards(t); len(fs) != 0 {
				t.Fatalf("upnpc left %v", fs)
			}
		}
		r := Row{Name: "remove 21 + 42000-42010, IGD v2 (median of 3)", Natdoctor: median(nds).Seconds(),
			Peer: "upnpc -u URL -N 42000 42010 TCP, then upnpc -u URL -d 21 TCP", PeerSeconds: median(peers).Seconds(),
			Target: "1-3 router requests", Met: ndReq >= 1 && ndReq <= 3}
		r.Note = fmt.Sprintf("router requests per removal (SOAP, miniupnpd's log): natdoctor %d (its lookup, 21, one DeletePortMappingRange), upnpc %d; upnpc -N removes every mapping in the range whoever owns it, natdoctor only a range it saw to be all this host's", ndReq, peerReq)
		add(r)
	}
	// 9. keep 21 + 42000-42010 with a 1 h lease and 30 s checks, on a
	// clock 30 times faster (120 s lease, 1 s checks, for 120 s: one hour
	// of keep), against a cron-style upnpc -r loop with the same checks.
	if want("keep") {
		const scale, span = 30, 120 * time.Second
		count := func(name string, args ...string) int {
			l := lab.Start(t, lab.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), span)
			defer cancel()
			before := upnpcRequests(l)
			_ = l.Server.Command(ctx, name, args...).Run() // ended by ctx: the hour is over
			return upnpcRequests(l) - before
		}
		nd := count(bin, "keep", "21", "42000-42010", "--via", "upnp", "--lease", fmt.Sprint(time.Hour/scale), "--check", fmt.Sprint(30*time.Second/scale), "--leave")
		loop := "while :; do upnpc -r 21 TCP " + strings.Join(portArgs(42000, 42010), " ") + " >/dev/null 2>&1; sleep 1; done"
		peer := count("bash", "-c", loop)
		r := Row{Name: "keep 21 + 42000-42010, 1 h lease, 30 s checks: router requests per hour", Natdoctor: float64(nd),
			Peer: "upnpc -r every check (a cron loop)", PeerSeconds: float64(peer),
			Target: fmt.Sprintf("<= 1/10 of the %d an hour natdoctor keep sent before (commit 884df24)", keepRequestsBefore),
			Met:    nd*10 <= keepRequestsBefore}
		r.Note = "counted in miniupnpd's log over one scaled hour (lease 2 m, checks 1 s, 120 s); the columns hold requests, not seconds"
		add(r)
	}

	// 10. check of 5 ports that the router drops (no mapping, no answer):
	// each costs a whole dial timeout, so they are checked at once.
	if want("check") {
		l := lab.Start(t, lab.Options{NoOtherFTP: true})
		refl := l.StartReflector(t, "--burst", "1000", "--rate", "100")
		l.Router.MustRun(t, "nft", "add", "rule", "inet", "filter", "silent", "iifname", "wan", "tcp", "dport", "2201-2205", "drop")
		args := []string{"check", "2201", "2202", "2203", "2204", "2205", "--reflector", refl}
		out, _ := l.Server.Run(bin, append(args, "--json")...)
		if n := strings.Count(out, `"outcome": "timeout"`); n != 5 {
			t.Errorf("check of 5 dropped ports: %d timed out from outside, want 5: the row would time something else\n%s", n, out)
		}
		nd := runs(t, 5, l.Server, time.Minute, bin, args...)
		// The peer: the same 5 ports from the outside host, one connect
		// each with the reflector's dial timeout (3 s), as nc -z or a
		// port-checker site does.
		loop := fmt.Sprintf("for p in 2201 2202 2203 2204 2205; do socat -T3 /dev/null TCP4:%s:$p,connect-timeout=3 2>/dev/null; done", l.WAN())
		peer := runs(t, 1, l.Outside, time.Minute, "bash", "-c", loop)
		dial := 3 * time.Second // reflector.DefaultLimits().DialTimeout
		r := Row{Name: "check of 5 dropped TCP ports through the reflector (median of 5)", Natdoctor: nd.Seconds(),
			Peer: "socat connect, 3 s timeout, port by port from the outside host", PeerSeconds: peer.Seconds(),
			Target: "about one dial timeout (3 s), < 2 dial timeouts", Met: nd < 2*dial}
		r.Note = "every port is dialled back at once, with the unmapped canary in the same request"
		add(r)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nnatdoctor benchmarks on the lab (%s/%s, %d cores, %s)\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "| comparison | natdoctor | peer | peer | ratio peer/natdoctor | target | met |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		peer, ratio := "-", "-"
		if r.Peer != "" {
			peer = fmt.Sprintf("%.3f s", r.PeerSeconds)
			ratio = fmt.Sprintf("%.1fx", r.Ratio)
		}
		nd := fmt.Sprintf("%.3f s", r.Natdoctor)
		switch {
		case strings.Contains(r.Name, "(MB)"):
			nd = fmt.Sprintf("%.1f", r.Natdoctor)
		case strings.Contains(r.Name, "requests per hour"):
			nd, peer = fmt.Sprintf("%.0f requests", r.Natdoctor), fmt.Sprintf("%.0f requests", r.PeerSeconds)
		}
		if r.NatdoctorReq > 0 {
			nd += fmt.Sprintf(" (%.2f req/mapping)", r.NatdoctorReq)
			peer += fmt.Sprintf(" (%.2f req/mapping)", r.PeerReq)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %v |\n", r.Name, nd, r.Peer, peer, ratio, r.Target, r.Met)
	}
	for _, r := range rows {
		if r.Note != "" {
			fmt.Fprintf(&b, "- %s: %s\n", r.Name, r.Note)
		}
	}
	fmt.Print(b.String())
	js, _ := json.MarshalIndent(map[string]any{"date": time.Now().UTC(), "rows": rows}, "", "  ")
	if err := os.WriteFile("results.json", js, 0o644); err != nil {
		t.Fatal(err)
	}
}
