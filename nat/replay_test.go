package nat_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/nat/nattest"
)

// replayOutcome is one device's row of README's table.
type replayOutcome struct {
	device, vendor, stack, service, outcome string
	quirks                                  []string
}

// A quirk of issue 15, and how to see it in a capture: the evidence is
// read from the captured bytes, so a device is said to show a quirk only
// when its capture does.
type quirk struct {
	name string
	in   func(c *nattest.Capture) bool
}

func anyFile(c *nattest.Capture, f func(string) bool) bool {
	for _, v := range c.Files {
		if f(string(v.Body)) {
			return true
		}
	}
	for _, v := range c.Replies {
		if f(string(v.Body)) {
			return true
		}
	}
	return false
}

var quirks = []quirk{
	{"SSDP reply from a port other than 1900", func(c *nattest.Capture) bool {
		return c.Meta.SSDPSourcePort != 0 && c.Meta.SSDPSourcePort != 1900
	}},
	{"description over HTTP/1.0 as application/octet-stream (Broadcom)", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool {
			return strings.HasPrefix(s, "HTTP/1.0") && strings.Contains(strings.ToLower(s), "application/octet-stream")
		})
	}},
	{"query-string control URL", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return regexp.MustCompile(`<controlURL>[^<]*\?[^<]*</controlURL>`).MatchString(s) })
	}},
	{"absolute control URL", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return strings.Contains(s, "<controlURL>http://") })
	}},
	{"URLBase", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return regexp.MustCompile(`<URLBase>\s*http`).MatchString(s) })
	}},
	{"two WAN devices", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return strings.Count(s, "device:WANDevice:") >= 2 })
	}},
	{"the whole IGD in the urn:dslforum-org namespace", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return strings.Contains(s, "urn:dslforum-org:device:InternetGatewayDevice") })
	}},
	{"WANPPPConnection:2 (not in the spec)", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return strings.Contains(s, "service:WANPPPConnection:2") })
	}},
	{"WANPPPConnection only (a PPPoE line)", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool {
			return strings.Contains(s, "WANPPPConnection:") && !strings.Contains(s, "WANIPConnection:")
		})
	}},
	{"m: prefixes in SOAP replies", func(c *nattest.Capture) bool {
		for _, v := range c.Replies {
			if strings.Contains(string(v.Body), "<m:") {
				return true
			}
		}
		return false
	}},
	{"IGD v2 device", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return strings.Contains(s, "device:InternetGatewayDevice:2") })
	}},
	{"IGD v1 root with an IGD v2 firewall service (WANIPv6FirewallControl)", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool {
			return strings.Contains(s, "device:InternetGatewayDevice:1") && strings.Contains(s, "service:WANIPv6FirewallControl:1")
		})
	}},
	{"WANIPConnection and WANPPPConnection both described", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool {
			return strings.Contains(s, "service:WANIPConnection:") && strings.Contains(s, "service:WANPPPConnection:")
		})
	}},
	{"no default namespace", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return regexp.MustCompile(`<root\s*>`).MatchString(s) })
	}},
	{"a Wi-Fi Alliance (WPS) device beside the IGD", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return strings.Contains(s, "device:WFADevice:") })
	}},
	{"names left blank", func(c *nattest.Capture) bool {
		return anyFile(c, func(s string) bool { return strings.Contains(s, "<friendlyName></friendlyName>") })
	}},
}

// quirksOf are the quirks c's capture shows.
func quirksOf(c *nattest.Capture) []string {
	var out []string
	for _, q := range quirks {
		if q.in(c) {
			out = append(out, q.name)
		}
	}
	return out
}

// TestReplayQuirks: every quirk natdoctor claims to handle is shown by at
// least one captured device, and every device that shows it works end to
// end (TestReplayDevices runs them; this test runs the flow again for the
// devices of each quirk, so that a quirk's failure names the quirk).
func TestReplayQuirks(t *testing.T) {
	cs := loadCorpus(t)
	for _, q := range quirks {
		t.Run(q.name, func(t *testing.T) {
			t.Parallel()
			var shown []*nattest.Capture
			for _, c := range cs {
				if q.in(c) {
					shown = append(shown, c)
				}
			}
			if len(shown) == 0 {
				t.Skip("no captured device shows it: not checked")
			}
			for _, c := range shown {
				if out := replayFlow(t, c); !strings.HasPrefix(out.outcome, "works") {
					t.Errorf("%s (%s): %s", c.Name, q.name, out.outcome)
				}
			}
		})
	}
}

var (
	replayMu   sync.Mutex
	replayRows = map[string]replayOutcome{}
)

// loadCorpus reads every capture of testdata/replay.
func loadCorpus(t *testing.T) []*nattest.Capture {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("nattest", "testdata", "replay", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	var cs []*nattest.Capture
	for _, d := range dirs {
		c, err := nattest.LoadCapture(d)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

// replayRouter starts the fake router as the captured device.
func replayRouter(t *testing.T, c *nattest.Capture, setup ...func(*nattest.Router)) *nattest.Router {
	t.Helper()
	v2 := slices.ContainsFunc(mapsValues(c.Files), func(f nattest.File) bool {
		return strings.Contains(string(f.Body), "device:InternetGatewayDevice:2")
	})
	return nattest.New(t, append([]func(*nattest.Router){func(r *nattest.Router) {
		r.Replay = c
		r.IGDv1 = !v2
		r.Silent.Store(!c.Meta.NATPMP) // these devices speak UPnP only
	}}, setup...)...)
}

func mapsValues(m map[string]nattest.File) []nattest.File {
	var out []nattest.File
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestReplayDevices runs every captured device through what a user does:
// discover, list, add 21 + 42000-42010, list, remove, each against the
// device's own descriptions and replies (the table answering what the
// capture does not hold).
func TestReplayDevices(t *testing.T) {
	t.Cleanup(func() { printReplayTable(t) })
	for _, c := range loadCorpus(t) {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			row := replayFlow(t, c)
			replayMu.Lock()
			replayRows[c.Name] = row
			replayMu.Unlock()
			if !strings.HasPrefix(row.outcome, "works") {
				t.Error(row.outcome)
			}
		})
	}
}

// replayFlow runs discover, list, add 21 + 42000-42010, list, remove
// against the replayed device and says how it went.
func replayFlow(t *testing.T, c *nattest.Capture) (row replayOutcome) {
	row = replayOutcome{device: c.Name, vendor: c.Meta.Vendor + " " + c.Meta.Model, stack: c.Meta.Stack, quirks: quirksOf(c)}
	r := replayRouter(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := replayConfig(r, c)
	cfg.PMPTimeout, cfg.UPnPTimeout = time.Second, 10*time.Second
	cfg.PatientTimeout = 10 * time.Second
	cfg.HTTPClient = replayHTTPClient()
	d, err := nat.Discover(ctx, cfg)
	if err != nil {
		row.outcome = "discovery failed: " + err.Error()
		return row
	}
	if d.UPnP.Status != nat.StatusOK || d.UPnP.Device == nil {
		row.outcome = "UPnP not found: " + d.UPnP.Error
		return row
	}
	row.service = shortService(d.UPnP.Device.ServiceType)
	host := d.LocalAddr
	l, err := d.Lister()
	if err != nil {
		row.outcome = "no lister: " + err.Error()
		return row
	}
	if ms, err := l.List(ctx); err != nil || len(ms) != 0 {
		row.outcome = fmt.Sprintf("first list: %v, %d entries", err, len(ms))
		return row
	}
	m := &nat.Mapper{Router: l, Lister: l, Verify: true}
	steps, err := m.PlanAdd(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, host, time.Hour, ""))
	if err == nil {
		err = m.Add(ctx, steps)
	}
	if err != nil {
		row.outcome = "add failed: " + err.Error()
		return row
	}
	if n := len(r.Entries()); n != 12 {
		row.outcome = fmt.Sprintf("add left %d mappings, want 12", n)
		return row
	}
	ms, err := l.List(ctx)
	if err != nil || len(ms) != 12 {
		row.outcome = fmt.Sprintf("list after add: %v, %d entries", err, len(ms))
		return row
	}
	for _, mp := range ms {
		if mp.InternalAddr != host {
			t.Errorf("listed %v, want this host", mp)
		}
	}
	rsteps, err := m.PlanRemove(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, host, 0, ""))
	if err == nil {
		err = m.Remove(ctx, rsteps)
	}
	if err != nil || len(r.Entries()) != 0 {
		row.outcome = fmt.Sprintf("remove: %v, %d left", err, len(r.Entries()))
		return row
	}
	row.outcome = "works"
	if len(d.UPnP.Device.Workarounds) > 0 {
		row.outcome = "works; natdoctor worked around: " + strings.Join(d.UPnP.Device.Workarounds, "; ")
	}
	return row
}

func shortService(s string) string {
	s = strings.TrimPrefix(s, "urn:schemas-upnp-org:service:")
	return s
}

// printReplayTable prints README's device table (NATDOCTOR_REPLAY_TABLE=1).
func printReplayTable(t *testing.T) {
	if os.Getenv("NATDOCTOR_REPLAY_TABLE") != "1" {
		return
	}
	var names []string
	for n := range replayRows {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| device | vendor and model | UPnP stack (SERVER) | quirks its capture shows | service used | discover, list, add 21 + 42000-42010, list, remove |\n|---|---|---|---|---|---|\n")
	for _, n := range names {
		r := replayRows[n]
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", r.device, r.vendor, r.stack, strings.Join(r.quirks, "; "), r.service, r.outcome)
	}
	b.WriteString("\n| device | file | source (repository, path, commit) | note |\n|---|---|---|---|\n")
	for _, c := range loadCorpus(t) {
		for _, src := range c.Meta.Sources {
			fmt.Fprintf(&b, "| `%s` | `%s` | %s `%s` @%s | %s |\n", c.Name, src.File, src.Repo, src.Path, src.Commit[:12], src.Note)
		}
		var made []string
		for f := range c.Meta.Handmade {
			made = append(made, f)
		}
		sort.Strings(made)
		for _, f := range made {
			fmt.Fprintf(&b, "| `%s` | `%s` | hand-made | %s |\n", c.Name, f, c.Meta.Handmade[f])
		}
	}
	t.Log("\n" + b.String())
}

// TestReplayPicksTheConnectedService: the MikroTik capture describes two
// WAN devices, each with a WANIPConnection. When the first is not
// connected (the idle WAN), natdoctor asks both and uses the connected one
// with a public address, and says so; without that it would map through
// a connection that carries nothing.
func TestReplayPicksTheConnectedService(t *testing.T) {
	c, err := nattest.LoadCapture(filepath.Join("nattest", "testdata", "replay", "mikrotik-chr-7.10"))
	if err != nil {
		t.Fatal(err)
	}
	const first, second = "/upnp/control/yomkmsnooi/wanipconn-1", "/upnp/control/xstnsgeuyh/wanipconn-7"
	for _, tc := range []struct {
		down []string
		want string
	}{{nil, first}, {[]string{first}, second}} {
		r := nattest.New(t, func(r *nattest.Router) {
			r.Replay, r.IGDv1 = c, true
			r.DownControls = map[string]bool{}
			for _, d := range tc.down {
				r.DownControls[d] = true
			}
		})
		r.Silent.Store(true)
		r.ExternalAddrIs.Store("11.0.0.1")
		cfg := testConfig(r)
		cfg.UPnPTimeout, cfg.PatientTimeout = 10*time.Second, 10*time.Second
		cfg.HTTPClient = replayHTTPClient()
		d, err := nat.Discover(context.Background(), cfg)
		if err != nil || d.UPnP.Device == nil {
			t.Fatalf("discover: %v %+v", err, d)
		}
		if !strings.HasSuffix(d.UPnP.Device.ControlURL, tc.want) {
			t.Errorf("down %v: uses %s, want %s", tc.down, d.UPnP.Device.ControlURL, tc.want)
		}
		if said := strings.Join(d.UPnP.Device.Workarounds, " "); (len(tc.down) > 0) != strings.Contains(said, "WAN connection services") {
			t.Errorf("down %v: workarounds %q", tc.down, said)
		}
	}
}

// withReply copies a capture directory and adds a SOAP reply to it: the
// shapes below are hand-made after issue reports (no capture of them is
// public), on a real device's descriptions.
func withReply(t *testing.T, device, action, raw string) *nattest.Capture {
	t.Helper()
	return withFile(t, device, filepath.Join("soap", action+".http"), func([]byte) []byte { return []byte(raw) })
}

// withFile copies a capture directory and rewrites one file of it (made
// when absent) with edit.
func withFile(t *testing.T, device, rel string, edit func([]byte) []byte) *nattest.Capture {
	t.Helper()
	src := filepath.Join("nattest", "testdata", "replay", device)
	dst := filepath.Join(t.TempDir(), device)
	err := filepath.WalkDir(src, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err == nil {
		err = os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755)
	}
	if err == nil {
		old, _ := os.ReadFile(filepath.Join(dst, rel))
		err = os.WriteFile(filepath.Join(dst, rel), edit(old), 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := nattest.LoadCapture(dst)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func faultReply(body string) string {
	return "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" + body
}

// TestReplaySOAPShapes: replies routers send that the spec does not: a
// fault without faultcode and faultstring (FRITZ!Box 6660), bytes that are
// not UTF-8 in errorDescription (TP-Link Archer C8), reply elements without
// any namespace (DD-WRT on an Asus RT-N16). natdoctor must still read the
// error code (718: the port is another host's, so a conflict, not a broken
// router) and the external address.
func TestReplaySOAPShapes(t *testing.T) {
	add := func(t *testing.T, c *nattest.Capture) error {
		_, d, l := replayed(t, c)
		_, err := l.Add(context.Background(), nat.Request{Protocol: nat.TCP, ExternalPort: 21, InternalAddr: d.LocalAddr, InternalPort: 21, Lease: time.Hour})
		return err
	}
	for _, tc := range []struct{ name, fault string }{
		{"fault without faultcode and faultstring", `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`},
		{"bytes that are not UTF-8 in errorDescription", "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>718</errorCode><errorDescription>Conflict\xff\xfe\x01InMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := add(t, withReply(t, "pfsense-2.5", "AddPortMapping", faultReply(tc.fault)))
			if nat.UPnPCode(err) != nat.UPnPConflictInMappingEntry {
				t.Errorf("add: %v (code %d), want the router's 718", err, nat.UPnPCode(err))
			}
		})
	}
	t.Run("reply elements without a namespace", func(t *testing.T) {
		body := `<?xml version="1.0"?><Envelope><Body><GetExternalIPAddressResponse><NewExternalIPAddress>11.0.0.9</NewExternalIPAddress></GetExternalIPAddressResponse></Body></Envelope>`
		c := withReply(t, "pfsense-2.5", "GetExternalIPAddress", "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"+body)
		_, d, _ := replayed(t, c)
		if got := d.UPnP.ExternalAddr.String(); got != "11.0.0.9" {
			t.Errorf("external address %q (%s), want 11.0.0.9", got, d.UPnP.Error)
		}
	})
}

// TestReplayEndOfTable: the index past the end of an IGD v1 table is 713
// by the spec; routers answer 714 or 402 too. Each ends the listing, on
// the pfSense capture (an IGD v1): the mappings before it are listed, and
// no error hides them.
func TestReplayEndOfTable(t *testing.T) {
	c, err := nattest.LoadCapture(filepath.Join("nattest", "testdata", "replay", "pfsense-2.5"))
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int32{713, 714, 402} {
		_, _, l := replayed(t, c, func(r *nattest.Router) {
			r.EndOfTable.Store(code)
			r.Set("TCP", 21, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: 21, Enabled: true})
			r.Set("TCP", 42000, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: 42000, Enabled: true})
		})
		ms, err := l.List(context.Background())
		if err != nil || len(ms) != 2 {
			t.Errorf("end of table as %d: %d mappings, %v", code, len(ms), err)
		}
	}
	// An answer that is no SOAP reply at all, past the end: the listing
	// keeps what it read and says it stopped early (list shows both).
	for _, bad := range []struct {
		name, body string
		status     int
	}{
		{"an HTML page", "<html><body>Error</body></html>", 200},
		{"an empty envelope", `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body></s:Body></s:Envelope>`, 200},
		{"a truncated reply", `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetGener`, 200},
		{"HTTP 500 without a fault", "<html>Internal Server Error</html>", 500},
	} {
		_, _, l := replayed(t, c, func(r *nattest.Router) {
			r.EndOfTableBody, r.EndOfTableStatus = bad.body, bad.status
			r.Set("TCP", 21, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: 21, Enabled: true})
			r.Set("TCP", 42000, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: 42000, Enabled: true})
		})
		ms, err := l.List(context.Background())
		if len(ms) != 2 || !errors.Is(err, nat.ErrListIncomplete) || !strings.Contains(err.Error(), "after 2 entries") {
			t.Errorf("end of table as %s: %d mappings, %v; want both and ErrListIncomplete", bad.name, len(ms), err)
		}
	}
	// Nothing read before the unreadable answer: no listing to show.
	_, _, l := replayed(t, c, func(r *nattest.Router) { r.EndOfTableBody = "<html></html>" })
	if ms, err := l.List(context.Background()); err == nil || errors.Is(err, nat.ErrListIncomplete) || len(ms) != 0 {
		t.Errorf("unreadable first answer: %d mappings, %v; want a plain error", len(ms), err)
	}
}

// TestReplayLeaseLadder: a router that refuses a lease longer than its
// limit with 402 (on the pfSense capture): natdoctor asks for an hour,
// then for a permanent lease, and reports what it got.
func TestReplayLeaseLadder(t *testing.T) {
	c, err := nattest.LoadCapture(filepath.Join("nattest", "testdata", "replay", "pfsense-2.5"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		limit int64
		ask   time.Duration
		want  time.Duration
		adds  int
	}{
		{limit: 86400, ask: 2 * time.Hour, want: 2 * time.Hour, adds: 1},
		{limit: 3600, ask: 2 * time.Hour, want: time.Hour, adds: 2},
		{limit: 60, ask: 2 * time.Hour, want: 0, adds: 3},
	} {
		r, d, l := replayed(t, c, func(r *nattest.Router) {
			r.MaxLease.Store(tc.limit)
		})
		before := r.Actions()["AddPortMapping"]
		m, err := l.Add(context.Background(), nat.Request{Protocol: nat.TCP, ExternalPort: 42000, InternalAddr: d.LocalAddr, InternalPort: 42000, Lease: tc.ask})
		if err != nil || m.Lease != tc.want || r.Actions()["AddPortMapping"]-before != tc.adds {
			t.Errorf("limit %d s, asked %v: granted %v, %v, %d adds; want %v in %d", tc.limit, tc.ask, m.Lease, err, r.Actions()["AddPortMapping"]-before, tc.want, tc.adds)
		}
		if e := r.Entries()[nattest.Key{Proto: "TCP", Port: 42000}]; time.Duration(e.Lease)*time.Second != tc.want {
			t.Errorf("limit %d s: the router holds lease %d s, natdoctor reports %v", tc.limit, e.Lease, m.Lease)
		}
	}
}

// TestReplayUnlistedMappings: a router that holds the mappings it accepts
// but never lists them (on the Google OnHub capture, an IGD v2: its bulk
// listing leaves them out). natdoctor's check after adding asks for each
// missing one by name, so a working mapping is not called lost and rolled
// back.
func TestReplayUnlistedMappings(t *testing.T) {
	c, err := nattest.LoadCapture(filepath.Join("nattest", "testdata", "replay", "google-onhub"))
	if err != nil {
		t.Fatal(err)
	}
	r, d, l := replayed(t, c, func(r *nattest.Router) { r.UnlistedAdds.Store(true) })
	m := &nat.Mapper{Router: l, Lister: l, Verify: true}
	ctx := context.Background()
	steps, err := m.PlanAdd(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, d.LocalAddr, time.Hour, ""))
	if err == nil {
		err = m.Add(ctx, steps)
	}
	if err != nil || len(r.Entries()) != 12 {
		t.Fatalf("add: %v, the router holds %d of 12", err, len(r.Entries()))
	}
	if ms, _ := l.List(ctx); len(ms) != 0 {
		t.Fatalf("the fake listed %d: the test proves nothing", len(ms))
	}
}

// TestReplayPolicyRefusalAs718: routers refuse a port by policy with 606,
// some with 718 (ConflictInMappingEntry) although no host holds it. On the
// pfSense capture refusing ports below 1024 with 718, natdoctor says the
// router refuses the port, not that another host has it, and leaves the
// router as it was.
func TestReplayPolicyRefusalAs718(t *testing.T) {
	c, err := nattest.LoadCapture(filepath.Join("nattest", "testdata", "replay", "pfsense-2.5"))
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int32{606, 718} {
		r, d, l := replayed(t, c, func(r *nattest.Router) {
			r.RefuseBelow.Store(1024)
			r.RefuseCode.Store(code)
		})
		m := &nat.Mapper{Router: l, Lister: l, Verify: true}
		ctx := context.Background()
		steps, err := m.PlanAdd(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, d.LocalAddr, time.Hour, ""))
		if err == nil {
			err = m.Add(ctx, steps)
		}
		msg := fmt.Sprint(err)
		if err == nil || strings.Contains(msg, "already mapped to another host") || !strings.Contains(msg, "polic") {
			t.Errorf("refused with %d: %v", code, err)
		}
		if len(r.Entries()) != 0 {
			t.Errorf("refused with %d: left %v", code, r.Entries())
		}
	}
}

// TestReplayAddRefusals: 501 (ActionFailed, routers whose table is full
// say no more), 728 and 729 on the tenth port of a range (pfSense
// capture): the add fails naming the port and a cause in plain words, and
// the router is left as it was.
func TestReplayAddRefusals(t *testing.T) {
	c, err := nattest.LoadCapture(filepath.Join("nattest", "testdata", "replay", "pfsense-2.5"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code int32
		says string
	}{{501, "full mapping table"}, {728, "table is full"}, {729, "static forward"}} {
		r, d, l := replayed(t, c, func(r *nattest.Router) {
			r.FailAddPort.Store(42009) // 21 and 42000-42008 go through, 42009 is refused
			r.FailAddCode.Store(tc.code)
			r.Set("TCP", 8080, nattest.Entry{InternalClient: "10.0.1.253", InternalPort: 8080, Enabled: true})
		})
		m := &nat.Mapper{Router: l, Lister: l, Verify: true}
		ctx := context.Background()
		pairs, _ := nat.ParsePorts([]string{"42009-42010"})
		steps, err := m.PlanAdd(ctx, nat.Requests(append(ftpPairs(t)[:10], pairs...), []nat.Protocol{nat.TCP}, d.LocalAddr, time.Hour, ""))
		if err == nil {
			err = m.Add(ctx, steps)
		}
		if err == nil || !strings.Contains(err.Error(), "42009") || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%d: %v", tc.code, err)
		}
		if e := r.Entries(); len(e) != 1 {
			t.Errorf("%d: the router holds %v, want only the other host's 8080", tc.code, e)
		}
	}
}

// TestReplayEmptyURLBase: a description with an empty URLBase (hand-made
// on the pfSense capture): URLs resolve against the Location, as if there
// were none.
func TestReplayEmptyURLBase(t *testing.T) {
	c := withFile(t, "pfsense-2.5", filepath.Join("http", "rootDesc.xml"), func(b []byte) []byte {
		return []byte(strings.Replace(string(b), "<specVersion>", "<URLBase></URLBase><specVersion>", 1))
	})
	if !strings.Contains(string(c.Files["/rootDesc.xml"].Body), "<URLBase></URLBase>") {
		t.Fatal("the description was not edited: the test proves nothing")
	}
	if out := replayFlow(t, c); !strings.HasPrefix(out.outcome, "works") {
		t.Error(out.outcome)
	}
}

// replayed starts the fake router as c (an IGD v1 unless c describes an
// IGD v2), silent on NAT-PMP and PCP, with setup, and discovers it.
func replayed(t *testing.T, c *nattest.Capture, setup ...func(*nattest.Router)) (*nattest.Router, *nat.Discovery, nat.Lister) {
	t.Helper()
	r := replayRouter(t, c, setup...)
	cfg := replayConfig(r, c)
	cfg.UPnPTimeout, cfg.PatientTimeout = 10*time.Second, 10*time.Second
	cfg.HTTPClient = replayHTTPClient()
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Lister()
	if err != nil {
		t.Fatal(err)
	}
	return r, d, l
}

// replayConfig is testConfig for a replayed device: NAT-PMP and PCP are
// not asked of a device captured speaking UPnP only (the fake is silent
// there, and waiting out their bound would test nothing of the capture).
func replayConfig(r *nattest.Router, c *nattest.Capture) nat.Config {
	cfg := testConfig(r)
	if !c.Meta.NATPMP {
		cfg.Skip = []nat.Method{nat.MethodNATPMP, nat.MethodPCP}
	}
	return cfg
}

// replayHTTPClient bounds each request to a replayed device as natdoctor
// does a real one: the fake answers at once, and the bound catches a hang,
// not a slow machine (2 s was missed under CI's load, with the lab beside).
func replayHTTPClient() *http.Client { return nat.NewHTTPClient(nat.DefaultHTTPTimeout) }

// TestReplaySeveralRootDevices: a box with several root devices (the Orange
// Livebox: a media server and a WPS device beside the IGD) answers an IGD
// search with each of them first. natdoctor sets aside the answers whose
// type is not an IGD's and uses the IGD, on the Livebox capture; discover
// names what it set aside.
func TestReplaySeveralRootDevices(t *testing.T) {
	c, err := nattest.LoadCapture(filepath.Join("nattest", "testdata", "replay", "orange-livebox"))
	if err != nil {
		t.Fatal(err)
	}
	_, d, l := replayed(t, c, func(r *nattest.Router) {
		r.SSDPOthers = []string{"urn:schemas-upnp-org:device:MediaServer:1", "urn:schemas-wifialliance-org:device:WFADevice:1"}
	})
	if d.UPnP.Device == nil || !strings.HasSuffix(d.UPnP.Device.ServiceType, "WANPPPConnection:2") {
		t.Fatalf("the Livebox's IGD not used: %+v (%s)", d.UPnP.Device, d.UPnP.Error)
	}
	if got := strings.Join(d.UPnP.Ignored, "\n"); !strings.Contains(got, "MediaServer:1") || !strings.Contains(got, "WFADevice:1") {
		t.Errorf("set-aside answers not named: %q", got)
	}
	if _, err := l.List(context.Background()); err != nil {
		t.Errorf("list: %v", err)
	}
}

// TestReplayControlURLOnAnotherPort: a description served on one port
// whose absolute control URLs name another (the D-Link DIR-655 capture
// names 4444 for its IGD and 8832 for its WPS device; here its description
// is served from port 80 of the same host, a variant of the capture). The
// replay serves each port; natdoctor speaks to the control URL's port, and
// the whole flow works.
func TestReplayControlURLOnAnotherPort(t *testing.T) {
	c, err := nattest.LoadCapture(filepath.Join("nattest", "testdata", "replay", "dlink-dir-655"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err = c.Relocated("http://192.168.0.1:80/root.xml"); err != nil {
		t.Fatal(err)
	}
	if row := replayFlow(t, c); !strings.HasPrefix(row.outcome, "works") {
		t.Fatal(row.outcome)
	}
	_, d, _ := replayed(t, c)
	loc, ctl := d.UPnP.Device.Location, d.UPnP.Device.ControlURL
	lu, _ := url.Parse(loc)
	cu, _ := url.Parse(ctl)
	if lu == nil || cu == nil || lu.Port() == cu.Port() || lu.Hostname() != cu.Hostname() {
		t.Errorf("description %s, control %s: want the same host, another port", loc, ctl)
	}
}
