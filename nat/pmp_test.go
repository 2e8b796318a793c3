package nat_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/nat/nattest"
)

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

// TestReplayMiniupnpdBehindCGNAT replays what the real miniupnpd 2.3.1
// answers when its own WAN address is in 100.64/10 (captured in the lab,
// testdata/pmp): NAT-PMP's external address and map requests get result 3
// (NETWORK_FAILURE), PCP's MAP gets NO_RESOURCES naming 100.64.0.1. Both
// are read as the router having no usable external address, double NAT,
// and say so; NO_RESOURCES alone would read as a full table.
func TestReplayMiniupnpdBehindCGNAT(t *testing.T) {
	replies, err := nattest.LoadPMPCapture(filepath.Join("nattest", "testdata", "pmp", "miniupnpd-2.3.1-cgnat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	r := nattest.New(t, func(r *nattest.Router) { r.PMPReplay = replies })
	cfg := testConfig(r)
	cfg.PMPTimeout = 5 * time.Second
	cfg.Skip = []nat.Method{nat.MethodUPnP}
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !d.NATPMP.NoExternalAddr {
		t.Errorf("NAT-PMP result 3 not read as no external address: %+v", d.NATPMP)
	}
	ctx := context.Background()
	req := nat.Request{Protocol: nat.TCP, ExternalPort: 21, InternalPort: 21, Lease: time.Hour}
	for _, m := range []nat.Method{nat.MethodNATPMP, nat.MethodPCP} {
		rt, err := d.Router(m)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		_, err = rt.Add(ctx, req)
		if !errors.Is(err, nat.ErrNoExternalAddr) || !strings.Contains(err.Error(), "double NAT") {
			t.Errorf("%s add: %v; want no external address, double NAT", m, err)
		}
		if m == nat.MethodPCP && !strings.Contains(fmt.Sprint(err), "100.64.0.1") {
			t.Errorf("PCP add: %v; want the router's own address named", err)
		}
	}
	if len(r.Entries()) != 0 {
		t.Errorf("the replayed router holds %v", r.Entries())
	}
}

// TestPCPAnnounceNetworkFailure: a PCP server whose router has no usable
// external address answers ANNOUNCE with NETWORK_FAILURE (hand-made
// reply; RFC 6887 section 7.4): discovery reads it as NAT-PMP's result 3,
// an answer saying double NAT or a line down, not as silence.
func TestPCPAnnounceNetworkFailure(t *testing.T) {
	announce := make([]byte, 24)
	announce[0], announce[1], announce[3] = 2, 0x80, 7 // version 2, ANNOUNCE response, NETWORK_FAILURE
	r := nattest.New(t, func(r *nattest.Router) { r.PMPReplay = map[[2]byte][]byte{{2, 0}: announce} })
	cfg := testConfig(r)
	cfg.PMPTimeout = 5 * time.Second
	cfg.Skip = []nat.Method{nat.MethodNATPMP, nat.MethodUPnP}
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d.PCP.Status != nat.StatusOK || !d.PCP.NoExternalAddr || !d.NoExternalAddr() {
		t.Errorf("PCP NETWORK_FAILURE: %+v", d.PCP)
	}
	if _, err := d.Router(nat.MethodPCP); err != nil {
		t.Errorf("the PCP router that answered is not usable for a clear refusal: %v", err)
	}
}
