package nat_test

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

func discover(t *testing.T, r *nattest.Router) *nat.Discovery {
	t.Helper()
	d, err := nat.Discover(context.Background(), testConfig(r))
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
	d := discover(t, r)
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

func TestWrongSourceIsIgnored(t *testing.T) {
	r := nattest.New(t)
	r.WrongSource.Store(true)
	d := discover(t, r)
	if d.NATPMP.Status != nat.StatusNoAnswer || d.PCP.Status != nat.StatusNoAnswer {
		t.Errorf("replies from the wrong source were accepted: natpmp %s, pcp %s", d.NATPMP.Status, d.PCP.Status)
	}
	if r.PMPRequests.Load() == 0 || r.PCPRequests.Load() == 0 {
		t.Error("the fake saw no request")
	}
}

func TestPCPFallsBackOnUnsupportedVersion(t *testing.T) {
	r := nattest.New(t)
	r.NoPCP.Store(true)
	d := discover(t, r)
	if d.PCP.Status != nat.StatusUnsupported || d.NATPMP.Status != nat.StatusOK {
		t.Fatalf("pcp %s (%s), natpmp %s", d.PCP.Status, d.PCP.Error, d.NATPMP.Status)
	}
	r.SSDPSilent.Store(true)
	d = discover(t, r)
	rt, err := d.Router("auto")
	if err != nil || rt.Method() != nat.MethodNATPMP {
		t.Fatalf("auto on a NAT-PMP-only router: %v, %v", rt, err)
	}
}

func TestPCPMapAndNonce(t *testing.T) {
	r := nattest.New(t)
	d := discover(t, r)
	rt, err := d.Router(nat.MethodPCP)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := rt.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: 42000, InternalPort: 42000, Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if m.ExternalPort != 42000 || m.Lease != time.Hour || m.ExternalAddr != r.External || m.Method != nat.MethodPCP {
		t.Errorf("granted %+v", m)
	}
	if _, ok := r.Entries()[nattest.Key{Proto: "TCP", Port: 42000}]; !ok {
		t.Fatal("no mapping on the router")
	}
	if err := rt.Delete(ctx, nat.TCP, 42000, 42000); err != nil {
		t.Fatal(err)
	}
	if len(r.Entries()) != 0 {
		t.Errorf("mapping left after delete: %v", r.Entries())
	}

	r.PCPBadNonce.Store(true)
	_, err = rt.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: 42001, InternalPort: 42001, Lease: time.Hour})
	if !errors.Is(err, nat.ErrMalformed) || !strings.Contains(err.Error(), "nonce") {
		t.Errorf("foreign nonce accepted: %v", err)
	}
}

func TestPCPResultCodesByName(t *testing.T) {
	r := nattest.New(t)
	d := discover(t, r)
	rt, _ := d.Router(nat.MethodPCP)
	for code, name := range map[int32]string{2: "NOT_AUTHORIZED", 8: "NO_RESOURCES", 11: "CANNOT_PROVIDE_EXTERNAL", 12: "ADDRESS_MISMATCH"} {
		r.PCPResult.Store(code)
		_, err := rt.Add(context.Background(), nat.Request{Protocol: nat.UDP, ExternalPort: 5000, InternalPort: 5000})
		var pe *nat.PCPError
		if !errors.As(err, &pe) || int32(pe.Code) != code || !strings.Contains(err.Error(), name) {
			t.Errorf("code %d: %v", code, err)
		}
	}
}

func TestNATPMPMapMovedPortAndCodes(t *testing.T) {
	r := nattest.New(t)
	d := discover(t, r)
	rt, err := d.Router(nat.MethodNATPMP)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := rt.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: 21, InternalPort: 21, Lease: 10 * time.Minute})
	if err != nil || m.ExternalPort != 21 || m.Lease != 10*time.Minute {
		t.Fatalf("add: %+v %v", m, err)
	}
	r.MoveExternal.Store(55555)
	_, err = rt.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: 42005, InternalPort: 42005})
	var moved *nat.PortMovedError
	if !errors.As(err, &moved) || moved.Granted != 55555 || moved.Requested != 42005 {
		t.Errorf("moved port not reported: %v", err)
	}
	r.MoveExternal.Store(0)
	if err := rt.Delete(ctx, nat.TCP, 21, 21); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Entries()[nattest.Key{Proto: "TCP", Port: 21}]; ok {
		t.Error("21 still mapped after delete")
	}
	for code, name := range map[int32]string{2: "NOT_AUTHORIZED", 3: "NETWORK_FAILURE", 4: "OUT_OF_RESOURCES"} {
		r.PMPResult.Store(code)
		_, err := rt.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: 8080, InternalPort: 8080})
		var pe *nat.PMPError
		if !errors.As(err, &pe) || int32(pe.Code) != code || !strings.Contains(err.Error(), name) {
			t.Errorf("code %d: %v", code, err)
		}
	}
	_, err = rt.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: 8080, InternalPort: 8080, InternalAddr: netip.MustParseAddr("10.9.9.9")})
	if err == nil || !strings.Contains(err.Error(), "only map ports to the host that asks") {
		t.Errorf("NAT-PMP mapping for another host: %v", err)
	}
}

func TestNoExternalAddressMeansDoubleNATSuspect(t *testing.T) {
	r := nattest.New(t)
	r.PMPResult.Store(3)
	r.ExternalAddrIs.Store("")
	d := discover(t, r)
	if !d.NoExternalAddr() || !d.UPnP.NoExternalAddr || !d.NATPMP.NoExternalAddr {
		t.Fatalf("no external address not seen: %+v", d)
	}
	if d.UPnP.Status != nat.StatusOK {
		t.Errorf("UPnP answered, status %s", d.UPnP.Status)
	}
}

func TestUPnPAddGetListDelete(t *testing.T) {
	r := nattest.New(t)
	d := discover(t, r)
	l, err := d.Lister()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	host := netip.MustParseAddr("10.0.1.2")
	for p := uint16(42000); p <= 42060; p++ {
		if _, err := l.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: p, InternalPort: p, InternalAddr: host, Description: "t", Lease: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Add(ctx, nat.Request{Protocol: nat.UDP, ExternalPort: 9, InternalPort: 9, InternalAddr: host}); err != nil {
		t.Fatal(err)
	}
	before := r.Actions()
	ms, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 62 {
		t.Fatalf("listed %d mappings, want 62", len(ms))
	}
	after := r.Actions()
	// TCP: one page holds all 61, but a page of 25 or more may have been
	// cut by the router, so both sides of the range are asked too; UDP: one.
	if n := after["GetListOfPortMappings"] - before["GetListOfPortMappings"]; n != 4 {
		t.Errorf("bulk list took %d pages for 61+1 entries, want 4", n)
	}
	if after["GetGenericPortMappingEntry"] != 0 {
		t.Error("fell back to generic listing although the bulk call works")
	}
	m, err := l.Get(ctx, nat.TCP, 42007)
	if err != nil || m.InternalAddr != host || m.InternalPort != 42007 || m.Description != "t" {
		t.Errorf("get: %+v %v", m, err)
	}
	if _, err := l.Get(ctx, nat.TCP, 1); !errors.Is(err, nat.ErrNoSuchMapping) {
		t.Errorf("get of a missing mapping: %v", err)
	}
	if err := l.Delete(ctx, nat.TCP, 42007, 42007); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, nat.TCP, 42007, 42007); !errors.Is(err, nat.ErrNoSuchMapping) {
		t.Errorf("second delete: %v", err)
	}
}

func TestUPnPListFallsBackToGeneric(t *testing.T) {
	r := nattest.New(t)
	for p := uint16(1000); p < 1040; p++ {
		r.Set("TCP", p, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: p, Enabled: true})
	}
	r.NoBulkList.Store(true)
	d := discover(t, r)
	l, _ := d.Lister()
	ms, err := l.List(context.Background())
	if err != nil || len(ms) != 40 {
		t.Fatalf("fallback list: %d entries, %v", len(ms), err)
	}
	if r.Actions()["GetGenericPortMappingEntry"] != 41 { // 40 entries, then 713
		t.Errorf("generic calls: %d", r.Actions()["GetGenericPortMappingEntry"])
	}
}

func TestUPnPIGDv1(t *testing.T) {
	r := nattest.New(t, func(r *nattest.Router) { r.IGDv1 = true })
	r.Set("TCP", 21, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: 21, Enabled: true})
	d := discover(t, r)
	if d.UPnP.Device == nil || d.UPnP.Device.IGDVersion != 1 || !strings.HasSuffix(d.UPnP.Device.ServiceType, "WANIPConnection:1") {
		t.Fatalf("v1 device: %+v %s", d.UPnP.Device, d.UPnP.Error)
	}
	l, _ := d.Lister()
	ms, err := l.List(context.Background())
	if err != nil || len(ms) != 1 {
		t.Fatalf("v1 list: %v %v", ms, err)
	}
}

func TestUPnPErrorCodesByName(t *testing.T) {
	r := nattest.New(t)
	d := discover(t, r)
	rt, _ := d.Router(nat.MethodUPnP)
	ctx := context.Background()
	me := netip.MustParseAddr("10.0.1.2")
	r.Set("TCP", 42003, nattest.Entry{InternalClient: "10.0.1.253", InternalPort: 42003})
	_, err := rt.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: 42003, InternalPort: 42003, InternalAddr: me})
	if nat.UPnPCode(err) != nat.UPnPConflictInMappingEntry || !strings.Contains(err.Error(), "ConflictInMappingEntry") {
		t.Errorf("718: %v", err)
	}
	r.RefuseBelow.Store(1024)
	_, err = rt.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: 21, InternalPort: 21, InternalAddr: me})
	if nat.UPnPCode(err) != nat.UPnPActionNotAuthorized || !strings.Contains(err.Error(), "ActionNotAuthorized") {
		t.Errorf("606: %v", err)
	}
	r.RefuseBelow.Store(0)
	r.OnlyPermanent.Store(true)
	m, err := rt.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: 21, InternalPort: 21, InternalAddr: me, Lease: time.Hour})
	if err != nil || m.Lease != 0 {
		t.Errorf("725 negotiation: granted %v, %v", m.Lease, err)
	}
}

func TestUPnPOversizedBodyIsCut(t *testing.T) {
	r := nattest.New(t)
	d := discover(t, r)
	rt, _ := d.Router(nat.MethodUPnP)
	r.BodyPadding.Store(200 << 20) // 200 MB
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	_, err := rt.ExternalAddr(context.Background())
	if !errors.Is(err, nat.ErrTooLarge) {
		t.Errorf("200 MB reply: %v", err)
	}
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapAlloc) - int64(before); grew > 64<<20 {
		t.Errorf("heap grew by %d MB", grew>>20)
	}
}

func TestUPnPIgnoresForeignLocation(t *testing.T) {
	r := nattest.New(t, func(r *nattest.Router) { r.LocationHost = "127.0.0.1" })
	d := discover(t, r)
	if d.UPnP.Status == nat.StatusOK {
		t.Fatal("accepted a Location on another host")
	}
	if len(d.UPnP.Ignored) == 0 || !strings.Contains(d.UPnP.Ignored[0], "points away from the gateway") {
		t.Errorf("ignored: %v", d.UPnP.Ignored)
	}
}

func TestUPnPRefusesForeignControlURL(t *testing.T) {
	r := nattest.New(t, func(r *nattest.Router) { r.ControlHost = "127.0.0.1:9" })
	d := discover(t, r)
	if d.UPnP.Status == nat.StatusOK || !strings.Contains(d.UPnP.Error, "not on the gateway") {
		t.Fatalf("foreign control URL: %s %s", d.UPnP.Status, d.UPnP.Error)
	}
}

func TestRequestCounter(t *testing.T) {
	r := nattest.New(t)
	var n atomic.Int64
	cfg := testConfig(r)
	cfg.CountRequest = func() { n.Add(1) }
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := d.Router(nat.MethodUPnP)
	base := n.Load()
	if _, err := rt.Add(context.Background(), nat.Request{Protocol: nat.TCP, ExternalPort: 5000, InternalPort: 5000, InternalAddr: netip.MustParseAddr("10.0.1.2")}); err != nil {
		t.Fatal(err)
	}
	if got := n.Load() - base; got != 1 || int64(r.Actions()["AddPortMapping"]) != 1 {
		t.Errorf("one add cost %d counted requests", got)
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

// TestUPnPListScatteredAndDense lists a table mixing scattered ports with
// dense runs: every entry is read, in far fewer pages than entries.
func TestUPnPListScatteredAndDense(t *testing.T) {
	r := nattest.New(t)
	want := map[uint16]bool{}
	for i := range 150 {
		want[uint16(1024+i*397%60000)] = true // scattered
	}
	for p := uint16(42000); p < 42100; p++ {
		want[p] = true // a passive range
	}
	ms, err := setAndList(t, r, slices.Collect(maps.Keys(want)))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		delete(want, m.ExternalPort)
	}
	if len(ms) != 250 || len(want) != 0 {
		t.Errorf("listed %d of 250; missing %v", len(ms), want)
	}
	if n := r.Actions()["GetListOfPortMappings"]; n > 40 {
		t.Errorf("%d pages for 250 entries", n)
	}
}

// TestUPnPListDensePages: a mapped range longer than a page is read one
// page at a time from the side not yet known, without splitting it.
func TestUPnPListDensePages(t *testing.T) {
	r := nattest.New(t)
	ms, err := setAndList(t, r, portRange(42000, 42249))
	if err != nil || len(ms) != 250 {
		t.Fatalf("listed %d of 250: %v", len(ms), err)
	}
	// TCP: 42150-42249, 42050-42149, 42000-42049, then 1-41999 and
	// 42250-65535 (empty); UDP: one.
	if n := r.Actions()["GetListOfPortMappings"]; n != 6 {
		t.Errorf("%d pages for a range of 250, want 6", n)
	}
}

// TestUPnPListRouterCapsPages: a router that returns fewer entries than
// asked for, silently, still has its whole table read.
func TestUPnPListRouterCapsPages(t *testing.T) {
	r := nattest.New(t)
	r.BulkListCap.Store(30)
	want := append(portRange(42000, 42060), portRange(5000, 5009)...)
	ms, err := setAndList(t, r, want)
	if err != nil || len(ms) != len(want) {
		t.Fatalf("listed %d of %d: %v", len(ms), len(want), err)
	}
}

// TestUPnPListHalvesPages: a router that fails pages larger than it can
// build with an HTTP error gets smaller pages, not the generic fallback.
func TestUPnPListHalvesPages(t *testing.T) {
	r := nattest.New(t)
	r.BulkListMax.Store(30)
	ms, err := setAndList(t, r, portRange(42000, 42060))
	if err != nil || len(ms) != 61 {
		t.Fatalf("listed %d of 61: %v", len(ms), err)
	}
	// 100 and 50 refused; then pages of 25: three for TCP 42000-42060,
	// one for 42061-65535, one for UDP.
	if n := r.Actions()["GetListOfPortMappings"]; n != 7 {
		t.Errorf("%d bulk calls, want 7", n)
	}
	if n := r.Actions()["GetGenericPortMappingEntry"]; n != 0 {
		t.Errorf("fell back to %d generic calls", n)
	}
}

// setAndList maps each TCP port to 10.0.1.2 on r, then lists r's table
// through a fresh discovery.
func setAndList(t *testing.T, r *nattest.Router, ports []uint16) ([]nat.Mapping, error) {
	t.Helper()
	for _, p := range ports {
		r.Set("TCP", p, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: p, Enabled: true})
	}
	l, err := discover(t, r).Lister()
	if err != nil {
		t.Fatal(err)
	}
	return l.List(context.Background())
}

func portRange(lo, hi uint16) []uint16 {
	var ps []uint16
	for p := lo; p <= hi; p++ {
		ps = append(ps, p)
	}
	return ps
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

// TestUPnPLookup: the ports diagnose checks cost one bulk page on IGD v2
// (one per run of ports when the table between them is busy), one
// GetSpecificPortMappingEntry each on v1 or when the bulk call fails, and
// only those ports come back.
func TestUPnPLookup(t *testing.T) {
	ports := []uint16{21}
	for p := uint16(42000); p <= 42010; p++ {
		ports = append(ports, p)
	}
	fill := func(r *nattest.Router) {
		for _, p := range append([]uint16{20, 22, 41999, 42011}, ports...) {
			if p == 42005 {
				continue // one passive port not mapped
			}
			r.Set("TCP", p, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: p, Enabled: true})
		}
	}
	for _, tc := range []struct {
		name   string
		setup  func(*nattest.Router)
		action string
		calls  int
	}{
		{"v2", func(*nattest.Router) {}, "GetListOfPortMappings", 1},
		{"v2, 40 other mappings between the runs", func(r *nattest.Router) {
			for p := uint16(30000); p < 30040; p++ {
				r.Set("TCP", p, nattest.Entry{InternalClient: "10.0.1.9", InternalPort: p, Enabled: true})
			}
		}, "GetListOfPortMappings", 3}, // the full page over both runs, then one per run
		{"v1", func(r *nattest.Router) { r.IGDv1 = true }, "GetSpecificPortMappingEntry", 12},
		{"v2 without bulk", func(r *nattest.Router) { r.NoBulkList.Store(true) }, "GetSpecificPortMappingEntry", 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := nattest.New(t, tc.setup)
			fill(r)
			l, err := discover(t, r).Lister()
			if err != nil {
				t.Fatal(err)
			}
			ms, err := l.Lookup(context.Background(), nat.TCP, ports)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint16
			for _, m := range ms {
				got = append(got, m.ExternalPort)
			}
			slices.Sort(got)
			want := slices.DeleteFunc(slices.Clone(ports), func(p uint16) bool { return p == 42005 })
			if !slices.Equal(got, want) {
				t.Errorf("ports %v, want %v", got, want)
			}
			if n := r.Actions()[tc.action]; n != tc.calls {
				t.Errorf("%d %s calls, want %d (all: %v)", n, tc.action, tc.calls, r.Actions())
			}
		})
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
	r.Silent.Store(true) // no NAT-PMP, no PCP
	d, err = nat.Discover(context.Background(), cfg)
	if err != nil || !d.UPnP.Answered() || d.UPnP.ExternalAddr != r.External {
		t.Fatalf("discover without NAT-PMP: %v %+v", err, d.UPnP)
	}
	if n := r.Actions()["GetExternalIPAddress"]; n != 1 {
		t.Errorf("%d GetExternalIPAddress without NAT-PMP, want 1", n)
	}
}
