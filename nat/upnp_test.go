package nat_test

import (
	"context"
	"errors"
	"maps"
	"net/netip"
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

// TestUPnPListBulkRefusedByFault: a router that describes
// WANIPConnection:2 but answers GetListOfPortMappings with a fault (401
// Invalid Action: an IGD v1 stack under a v2 description) is listed entry
// by entry, and the fault costs one request.
func TestUPnPListBulkRefusedByFault(t *testing.T) {
	r := nattest.New(t)
	for p := uint16(42000); p <= 42010; p++ {
		r.Set("TCP", p, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: p, Enabled: true})
	}
	r.BulkListFault.Store(401)
	d := discover(t, r)
	l, _ := d.Lister()
	ms, err := l.List(context.Background())
	if err != nil || len(ms) != 11 {
		t.Fatalf("list: %d entries, %v", len(ms), err)
	}
	if a := r.Actions(); a["GetListOfPortMappings"] != 1 || a["GetGenericPortMappingEntry"] != 12 {
		t.Errorf("requests: %v", a)
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

// TestUPnPLookupOnePort: one port is one GetSpecificPortMappingEntry, on
// IGD v2 too (miniupnpd answers it faster than a bulk page).
func TestUPnPLookupOnePort(t *testing.T) {
	r := nattest.New(t)
	r.Set("TCP", 21, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: 21, Enabled: true})
	l, err := discover(t, r).Lister()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint16{21, 22} {
		ms, err := l.Lookup(context.Background(), nat.TCP, []uint16{p})
		if err != nil || len(ms) != map[uint16]int{21: 1, 22: 0}[p] {
			t.Errorf("port %d: %v %v", p, ms, err)
		}
	}
	if a := r.Actions(); a["GetSpecificPortMappingEntry"] != 2 || a["GetListOfPortMappings"] != 0 {
		t.Errorf("requests %v, want 2 GetSpecificPortMappingEntry", a)
	}
}

// TestUPnPServiceGone: a control URL where nothing listens any more (the
// service cached by an earlier run, the router gone since) is
// ErrServiceGone, for the report to say so without reading error texts.
func TestUPnPServiceGone(t *testing.T) {
	r := nattest.New(t)
	cfg := testConfig(r)
	cfg.PMPTimeout, cfg.UPnPTimeout = 5*time.Second, 5*time.Second
	cfg.LocationCache = filepath.Join(t.TempDir(), "upnp-location")
	if _, err := nat.Discover(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.TrustCachedService, cfg.SkipExternalAddr = true, true
	cfg.HTTPClient = nat.NewHTTPClient(2 * time.Second) // no connection kept from the first run
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil || !d.UPnP.Cached {
		t.Fatalf("cached discovery: %v %+v", err, d.UPnP)
	}
	l, err := d.Lister()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := l.Lookup(context.Background(), nat.TCP, []uint16{21}); !errors.Is(err, nat.ErrServiceGone) {
		t.Errorf("lookup on a router that is gone: %v", err)
	}
}
