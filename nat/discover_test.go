package nat_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/nat/nattest"
)

// testConfig points nat at a fake router, with short bounds and no multicast.
func testConfig(r *nattest.Router) nat.Config {
	cfg := nat.DefaultConfig()
	cfg.Gateway = r.Addr
	cfg.SSDPMulticast = false
	cfg.PMPTimeout = 600 * time.Millisecond
	cfg.UPnPTimeout = 800 * time.Millisecond
	cfg.HTTPClient = nat.NewHTTPClient(2 * time.Second)
	cfg.PCPKey = []byte("nattest key")
	cfg.CallTimeout = time.Second
	return cfg
}

// discover runs a discovery that expects answers: its bounds are
// generous (a loaded machine, -race), as they cost a fake that answers
// nothing.
func discover(t *testing.T, r *nattest.Router) *nat.Discovery {
	t.Helper()
	cfg := testConfig(r)
	cfg.PMPTimeout, cfg.UPnPTimeout = 5*time.Second, 5*time.Second
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDiscoverAllProtocols(t *testing.T) {
	r := nattest.New(t)
	cfg := testConfig(r)
	cfg.PMPTimeout, cfg.UPnPTimeout = 5*time.Second, 5*time.Second
	start := time.Now()
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// It returns once every protocol answered, not when the bounds expire.
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("discovery of a prompt router took %v", el)
	}
	for _, pr := range []nat.ProtocolResult{d.NATPMP, d.PCP, d.UPnP} {
		if pr.Status != nat.StatusOK {
			t.Errorf("%s: %s %s", pr.Method, pr.Status, pr.Error)
		}
	}
	if d.NATPMP.ExternalAddr != r.External || d.UPnP.ExternalAddr != r.External {
		t.Errorf("external address: %v %v", d.NATPMP.ExternalAddr, d.UPnP.ExternalAddr)
	}
	dev := d.UPnP.Device
	if dev == nil || dev.Manufacturer != "Fake Networks" || dev.IGDVersion != 2 || !strings.HasSuffix(dev.ServiceType, "WANIPConnection:2") {
		t.Errorf("device: %+v", dev)
	}
	if d.NATPMP.Epoch == nil || d.PCP.Epoch == nil {
		t.Error("no epoch")
	}
}

func TestDiscoverSilentRouter(t *testing.T) {
	r := nattest.New(t)
	r.Silent.Store(true)
	r.SSDPSilent.Store(true)
	start := time.Now()
	d, err := nat.Discover(context.Background(), testConfig(r)) // the short bounds: the verdict's time is the point
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("silent router verdict took %v", el)
	}
	if d.Any() {
		t.Fatalf("silent router answered: %+v", d)
	}
	for _, pr := range []nat.ProtocolResult{d.NATPMP, d.PCP, d.UPnP} {
		if pr.Status != nat.StatusNoAnswer {
			t.Errorf("%s: %s, want no-answer (%s)", pr.Method, pr.Status, pr.Error)
		}
	}
	if _, err := d.Router("auto"); !errors.Is(err, nat.ErrNoMappingProtocol) {
		t.Errorf("Router(auto) on a silent router: %v", err)
	}
}

func TestDiscoverCancelledReturnsAtOnce(t *testing.T) {
	r := nattest.New(t)
	r.Silent.Store(true)
	r.SSDPSilent.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := testConfig(r)
	cfg.PMPTimeout, cfg.UPnPTimeout = 10*time.Second, 10*time.Second
	done := make(chan error, 1)
	go func() { _, err := nat.Discover(ctx, cfg); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Discover did not return after cancellation")
	}
}

func TestClassifyAddr(t *testing.T) {
	for in, want := range map[string]nat.AddrClass{
		"11.0.0.1": nat.AddrPublic, "10.0.1.1": nat.AddrPrivate, "192.168.1.1": nat.AddrPrivate,
		"100.64.0.1": nat.AddrShared, "100.127.255.254": nat.AddrShared, "127.0.0.1": nat.AddrLoopback,
		"169.254.1.1": nat.AddrLinkLocal, "0.0.0.0": nat.AddrUnspecified, "203.0.113.9": nat.AddrReserved,
		"198.18.0.1": nat.AddrReserved, "240.0.0.1": nat.AddrReserved,
	} {
		if got := nat.ClassifyAddr(netip.MustParseAddr(in)); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestLocalAddrFor(t *testing.T) {
	r := nattest.New(t)
	local, err := nat.LocalAddrFor(r.Addr)
	if err != nil || !local.IsLoopback() {
		t.Errorf("local address toward %s: %v %v", r.Addr, local, err)
	}
	// Dialling an unset or unspecified address would "succeed" toward
	// this host itself.
	for _, gw := range []netip.Addr{{}, netip.IPv4Unspecified(), netip.MustParseAddr("::1")} {
		if local, err := nat.LocalAddrFor(gw); err == nil {
			t.Errorf("LocalAddrFor(%v) = %v, want an error", gw, local)
		}
	}
}

// TestSkipUptime: mapping commands leave out GetStatusInfo, a request
// that costs as much as any other on a busy miniupnpd.
func TestSkipUptime(t *testing.T) {
	r := nattest.New(t)
	discover(t, r)
	if n := r.Actions()["GetStatusInfo"]; n != 1 {
		t.Fatalf("discovery sent GetStatusInfo %d times, want 1", n)
	}
	cfg := testConfig(r)
	cfg.PMPTimeout, cfg.UPnPTimeout = 5*time.Second, 5*time.Second
	cfg.SkipUptime = true
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil || d.UPnP.Status != nat.StatusOK || !d.UPnP.ExternalAddr.IsValid() {
		t.Fatalf("discovery without uptime: %+v %v", d.UPnP, err)
	}
	if n := r.Actions()["GetStatusInfo"]; n != 1 {
		t.Errorf("GetStatusInfo sent although skipped (%d in all)", n)
	}
	// remove needs the device, not its address: no SOAP request at all.
	before := r.SOAPRequests.Load()
	cfg.SkipExternalAddr = true
	d, err = nat.Discover(context.Background(), cfg)
	if err != nil || d.UPnP.Status != nat.StatusOK || d.UPnP.Device == nil {
		t.Fatalf("discovery without the external address: %+v %v", d.UPnP, err)
	}
	if _, err := d.Lister(); err != nil {
		t.Errorf("no lister: %v", err)
	}
	if n := r.SOAPRequests.Load() - before; n != 0 {
		t.Errorf("%d SOAP requests in a discovery that skips both", n)
	}
}

// TestDiscoverPatientWaitsForASlowRouter: a router that answers only after
// every protocol's own bound is not called silent when the caller is
// patient (diagnose), and is without patience (discover).
func TestDiscoverPatientWaitsForASlowRouter(t *testing.T) {
	r := nattest.New(t)
	r.SSDPSilent.Store(true)
	cfg := testConfig(r) // NAT-PMP/PCP bound 600 ms
	r.DeafUntil.Store(time.Now().Add(1200 * time.Millisecond).UnixNano())
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d.NATPMP.Answered() {
		t.Fatalf("NAT-PMP answered inside its own bound: the test proves nothing")
	}
	r.DeafUntil.Store(time.Now().Add(1200 * time.Millisecond).UnixNano())
	cfg.PatientTimeout = 5 * time.Second
	d, err = nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !d.NATPMP.Answered() && !d.PCP.Answered() {
		t.Fatalf("patient discovery called a slow router silent: NAT-PMP %s %s, PCP %s %s", d.NATPMP.Status, d.NATPMP.Error, d.PCP.Status, d.PCP.Error)
	}
}

// TestDiscoverPatienceCostsNothingOnceOneAnswers: with NAT-PMP answering
// at once, a silent SSDP keeps its own bound, not the patient one.
func TestDiscoverPatienceCostsNothingOnceOneAnswers(t *testing.T) {
	r := nattest.New(t)
	r.SSDPSilent.Store(true)
	cfg := testConfig(r) // UPnP bound 800 ms
	cfg.PatientTimeout = 10 * time.Second
	start := time.Now()
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !d.NATPMP.Answered() || d.UPnP.Answered() {
		t.Fatalf("NAT-PMP %s, UPnP %s", d.NATPMP.Status, d.UPnP.Status)
	}
	// The bound is 800 ms; 10 s would mean the patient window applied.
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("discovery took %v: a silent protocol waited the patient window although NAT-PMP answered", el)
	}
}

// TestDiscoverPatientSSDP: a gateway that answers M-SEARCH late (miniupnpd
// waits up to the request's MX; a loaded machine adds to it) is found when
// the caller is patient and nothing else answers, as with --via upnp.
func TestDiscoverPatientSSDP(t *testing.T) {
	r := nattest.New(t)
	r.SSDPDelay.Store(int64(1200 * time.Millisecond))
	cfg := testConfig(r) // UPnP bound 800 ms: the search alone gets 533 ms
	cfg.Skip = []nat.Method{nat.MethodNATPMP, nat.MethodPCP}
	cfg.PatientTimeout = 8 * time.Second
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !d.UPnP.Answered() {
		t.Fatalf("a late SSDP answer inside the patient window was missed: %s %s", d.UPnP.Status, d.UPnP.Error)
	}
}

// TestDiscoverCutShortIsNoAnswer: when another protocol answers and UPnP
// then runs out of its own bound mid-request, UPnP did not answer: that is
// not an error of the router's.
func TestDiscoverCutShortIsNoAnswer(t *testing.T) {
	r := nattest.New(t)
	r.Trickle.Store(true) // SOAP never finishes
	cfg := testConfig(r)
	cfg.PatientTimeout = 8 * time.Second
	cfg.HTTPClient = nat.NewHTTPClient(20 * time.Second)
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !d.NATPMP.Answered() {
		t.Fatalf("NAT-PMP %s %s", d.NATPMP.Status, d.NATPMP.Error)
	}
	if d.UPnP.Status != nat.StatusNoAnswer || !strings.Contains(d.UPnP.Error, "did not answer") {
		t.Errorf("UPnP cut short: %s %q", d.UPnP.Status, d.UPnP.Error)
	}
}

// TestDiscoverLocationCache: a Location found by SSDP is kept, the next run
// reads the description directly (no M-SEARCH, no 50 ms router delay), and
// a cache that does not answer, or is another gateway's or garbage, costs
// only the search it falls back to.
func TestDiscoverLocationCache(t *testing.T) {
	r := nattest.New(t)
	cfg := testConfig(r)
	// Generous bounds: the test counts searches, not time, and a loaded
	// machine must not turn a slow cached fetch into a search.
	cfg.PMPTimeout, cfg.UPnPTimeout = 6*time.Second, 6*time.Second
	cfg.LocationCache = filepath.Join(t.TempDir(), "state", "upnp-location")
	run := func() *nat.Discovery {
		t.Helper()
		d, err := nat.Discover(context.Background(), cfg)
		if err != nil || !d.UPnP.Answered() {
			t.Fatalf("discover: %v %s", err, d.UPnP.Error)
		}
		return d
	}
	run()
	searches := r.SSDPRequests.Load()
	if searches == 0 {
		t.Fatal("the first run did not search")
	}
	if _, err := os.Stat(cfg.LocationCache); err != nil {
		t.Fatalf("no cache written: %v", err)
	}
	if d := run(); r.SSDPRequests.Load() != searches || d.UPnP.Device == nil || d.UPnP.Device.Server == "" {
		t.Errorf("the cached run searched again (%d M-SEARCH) or lost the device: %+v", r.SSDPRequests.Load()-searches, d.UPnP.Device)
	}
	for name, content := range map[string]string{
		"dead Location":   `{"gateway":"` + r.Addr.String() + `","location":"http://` + r.Addr.String() + `:9/rootDesc.xml"}`,
		"another gateway": `{"gateway":"192.0.2.1","location":"http://192.0.2.1:5000/rootDesc.xml"}`,
		"Location away":   `{"gateway":"` + r.Addr.String() + `","location":"http://127.0.0.1:9/rootDesc.xml"}`,
		"garbage":         strings.Repeat("{", 10000),
		"not http":        `{"gateway":"` + r.Addr.String() + `","location":"file:///etc/passwd"}`,
	} {
		if err := os.WriteFile(cfg.LocationCache, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		before := r.SSDPRequests.Load()
		run()
		if r.SSDPRequests.Load() == before {
			t.Errorf("%s: no search after a cache that cannot be used", name)
		}
	}
}

// TestDiscoverExternalAddrOnce: with NAT-PMP's answer in hand, UPnP's
// GetExternalIPAddress is left out; without it (NAT-PMP silent), it is
// sent after a short grace.
func TestDiscoverExternalAddrOnce(t *testing.T) {
	r := nattest.New(t)
	cfg := testConfig(r)
	cfg.ExternalAddrOnce, cfg.SkipUptime = true, true
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil || !d.UPnP.Answered() || d.ExternalAddr() != r.External {
		t.Fatalf("discover: %v %+v", err, d)
	}
	if n := r.Actions()["GetExternalIPAddress"]; n != 0 {
		t.Errorf("%d GetExternalIPAddress although NAT-PMP told the address", n)
	}
	// A busy router answers NAT-PMP late (its first datagram is dropped,
	// the retransmission answered): UPnP still waits for it.
	cfg.PMPTimeout, cfg.UPnPTimeout = 5*time.Second, 5*time.Second
	r.DeafUntil.Store(time.Now().Add(300 * time.Millisecond).UnixNano())
	d, err = nat.Discover(context.Background(), cfg)
	if err != nil || !d.NATPMP.Answered() || d.ExternalAddr() != r.External {
		t.Fatalf("discover with a late NAT-PMP: %v %+v", err, d.NATPMP)
	}
	if n := r.Actions()["GetExternalIPAddress"]; n != 0 {
		t.Errorf("%d GetExternalIPAddress although NAT-PMP told the address, late", n)
	}
	cfg = testConfig(r)
	cfg.ExternalAddrOnce, cfg.SkipUptime = true, true
	r.Silent.Store(true) // no NAT-PMP, no PCP
	d, err = nat.Discover(context.Background(), cfg)
	if err != nil || !d.UPnP.Answered() || d.UPnP.ExternalAddr != r.External {
		t.Fatalf("discover without NAT-PMP: %v %+v", err, d.UPnP)
	}
	if n := r.Actions()["GetExternalIPAddress"]; n != 1 {
		t.Errorf("%d GetExternalIPAddress without NAT-PMP, want 1", n)
	}
}
func TestStatusOutcome(t *testing.T) {
	for s, want := range map[nat.Status]check.Outcome{nat.StatusOK: check.OK, nat.StatusNoAnswer: check.Failed, nat.StatusUnsupported: check.Failed,
		nat.StatusError: check.Error, nat.StatusSkipped: check.Skipped, "": check.Skipped} {
		if got := s.Outcome(); got != want {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}

// TestDiscoverPCPUnlessPMP: with PCPUnlessPMP, a router that answers
// NAT-PMP gets no PCP ANNOUNCE; one that does not gets it.
func TestDiscoverPCPUnlessPMP(t *testing.T) {
	r := nattest.New(t)
	cfg := testConfig(r)
	cfg.PMPTimeout, cfg.UPnPTimeout, cfg.PCPUnlessPMP = 5*time.Second, 5*time.Second, true
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil || !d.NATPMP.Answered() || d.PCP.Status != nat.StatusSkipped || r.PCPRequests.Load() != 0 {
		t.Fatalf("NAT-PMP answered: PCP %s (%s), %d PCP requests, %v", d.PCP.Status, d.PCP.Error, r.PCPRequests.Load(), err)
	}

	r2 := nattest.New(t)
	r2.PMPResult.Store(1) // NAT-PMP refused: unsupported version
	cfg = testConfig(r2)
	cfg.PMPTimeout, cfg.UPnPTimeout, cfg.PCPUnlessPMP = 5*time.Second, 5*time.Second, true
	d, err = nat.Discover(context.Background(), cfg)
	if err != nil || d.NATPMP.Answered() || !d.PCP.Answered() || r2.PCPRequests.Load() == 0 {
		t.Fatalf("NAT-PMP refused: NAT-PMP %s, PCP %s (%s), %v", d.NATPMP.Status, d.PCP.Status, d.PCP.Error, err)
	}
}

// TestDiscoverTrustCachedService: with TrustCachedService, a run after one
// that found the service asks the router nothing to open it, and the first
// request checks it: a control URL where nothing listens any more (a
// router restarted on another port) is searched for again, the request
// sent once more, and the cache mended.
func TestDiscoverTrustCachedService(t *testing.T) {
	r := nattest.New(t)
	r.Set("TCP", 21, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: 21, Enabled: true})
	cfg := testConfig(r)
	cfg.PMPTimeout, cfg.UPnPTimeout = 6*time.Second, 6*time.Second
	cfg.LocationCache = filepath.Join(t.TempDir(), "upnp-location")
	cfg.ExternalAddrOnce = true
	lookup := func(want bool) *nat.Discovery {
		t.Helper()
		d, err := nat.Discover(context.Background(), cfg)
		if err != nil || !d.UPnP.Answered() || d.UPnP.Cached != want {
			t.Fatalf("discover: %v, UPnP %s (%s), cached %v, want %v", err, d.UPnP.Status, d.UPnP.Error, d.UPnP.Cached, want)
		}
		l, err := d.Lister()
		if err != nil {
			t.Fatal(err)
		}
		ms, err := l.Lookup(context.Background(), nat.TCP, []uint16{21})
		if err != nil || len(ms) != 1 {
			t.Fatalf("lookup: %v %v", ms, err)
		}
		return d
	}
	lookup(false) // no cache yet
	cfg.TrustCachedService = true
	descs, searches := r.DescriptionRequests.Load(), r.SSDPRequests.Load()
	if d := lookup(true); r.DescriptionRequests.Load() != descs || r.SSDPRequests.Load() != searches || d.UPnP.Device.ControlURL == "" {
		t.Errorf("the cached service cost %d description GETs and %d M-SEARCH", r.DescriptionRequests.Load()-descs, r.SSDPRequests.Load()-searches)
	}

	// The router "restarts" on another port: the cached control URL leads
	// nowhere.
	b, err := os.ReadFile(cfg.LocationCache)
	if err != nil {
		t.Fatal(err)
	}
	dead := strings.ReplaceAll(string(b), r.Location()[len("http://"):strings.LastIndex(r.Location(), "/")], r.Addr.String()+":9")
	if dead == string(b) {
		t.Fatalf("the cache does not hold the control URL: %s", b)
	}
	if err := os.WriteFile(cfg.LocationCache, []byte(dead), 0o600); err != nil {
		t.Fatal(err)
	}
	searches = r.SSDPRequests.Load()
	lookup(true)
	if r.SSDPRequests.Load() == searches {
		t.Error("a dead cached control URL was not searched for again")
	}
	if b, _ := os.ReadFile(cfg.LocationCache); strings.Contains(string(b), r.Addr.String()+":9") {
		t.Errorf("the cache still holds the dead control URL: %s", b)
	}
	cfg.TrustCachedService = false
	descs = r.DescriptionRequests.Load()
	lookup(false)
	if r.DescriptionRequests.Load() == descs {
		t.Error("without TrustCachedService the description was not read")
	}
}

// TestDiscoverCARPStandby: a CARP pair (pfSense, OPNsense) takes M-SEARCH
// on the shared gateway address and answers from its own, with a Location
// on its own address. No IGD answers from the gateway itself, so natdoctor
// uses this one, says so, and its mappings go through it.
func TestDiscoverCARPStandby(t *testing.T) {
	var vip netip.Addr
	r := nattest.New(t, func(r *nattest.Router) {
		a := r.Addr.As4()
		vip = netip.AddrFrom4([4]byte{a[0], a[1], a[2], a[3] ^ 0x01}) // same /24
		r.SSDPAlias = vip
	})
	cfg := testConfig(r)
	cfg.Gateway = vip // the shared address; NAT-PMP there gets no answer
	cfg.PMPTimeout, cfg.UPnPTimeout, cfg.PatientTimeout = 500*time.Millisecond, 5*time.Second, 5*time.Second
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil || d.UPnP.Status != nat.StatusOK || d.UPnP.Device == nil {
		t.Fatalf("discover: %v %+v", err, d.UPnP)
	}
	if said := strings.Join(d.UPnP.Device.Workarounds, " "); !strings.Contains(said, "not from the gateway") || !strings.Contains(said, r.Addr.String()) {
		t.Errorf("workarounds %q: the standby's use is not said", said)
	}
	l, err := d.Lister()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(context.Background(), nat.Request{Protocol: nat.TCP, ExternalPort: 42000, InternalAddr: d.LocalAddr, InternalPort: 42000, Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if len(r.Entries()) != 1 {
		t.Errorf("the router holds %v", r.Entries())
	}
}

// TestDiscoverRouterAnsweringOneSearchTarget: the Sagemcom FAST3890V3
// answers ssdp:all with its Wi-Fi Alliance (WPS) device only, and
// InternetGatewayDevice:1 with its IGD (tailscale issue 3557; the reply is
// the one captured there, testdata/ssdp). natdoctor searches for the IGD
// types themselves, never ssdp:all, so it finds the IGD; a router that
// answers only IGD:2 is found too.
func TestDiscoverRouterAnsweringOneSearchTarget(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("nattest", "testdata", "ssdp", "sagemcom-fast3890v3.txt"))
	if err != nil {
		t.Fatal(err)
	}
	reply := strings.ReplaceAll(string(b), "\n", "\r\n")
	for _, st := range []string{"urn:schemas-upnp-org:device:InternetGatewayDevice:1", "urn:schemas-upnp-org:device:InternetGatewayDevice:2"} {
		r := nattest.New(t, func(r *nattest.Router) {
			r.SSDPOnlyST, r.SSDPReply = st, reply
			r.IGDv1 = strings.HasSuffix(st, ":1")
		})
		cfg := testConfig(r)
		cfg.UPnPTimeout = 5 * time.Second
		cfg.Skip = []nat.Method{nat.MethodNATPMP, nat.MethodPCP}
		d, err := nat.Discover(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if d.UPnP.Status != nat.StatusOK || d.UPnP.Device == nil {
			t.Errorf("router answering %s only: %s %s", st, d.UPnP.Status, d.UPnP.Error)
		}
	}
}

func TestIGDFamily(t *testing.T) {
	for st, want := range map[string]bool{
		"urn:schemas-upnp-org:device:InternetGatewayDevice:1": true,
		"urn:schemas-upnp-org:device:WANDevice:1":             true, // D-Link DIR-890L answers an IGD search so
		"uuid:81195F69-620A-380A-A9FA-908D784C0DDF":           true, // the DIR-890L capture's ST
		"upnp:rootdevice": true,
		"":                true,
		"urn:dslforum-org:device:InternetGatewayDevice:1": true,
		"urn:schemas-upnp-org:device:MediaServer:1":       false,
		"urn:schemas-wifialliance-org:device:WFADevice:1": false,
		"urn:dial-multiscreen-org:service:dial:1":         false,
	} {
		if got := nat.IGDFamily(st); got != want {
			t.Errorf("%q: %v, want %v", st, got, want)
		}
	}
}
