package nat_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/nat/nattest"
)

var (
	server = netip.MustParseAddr("10.0.1.2")
	other  = netip.MustParseAddr("10.0.1.253")
)

func ftpPairs(t *testing.T) []nat.PortPair {
	t.Helper()
	pairs, err := nat.ParsePorts([]string{"21", "42000-42010"})
	if err != nil {
		t.Fatal(err)
	}
	return pairs
}

func upnpMapper(t *testing.T, r *nattest.Router, force bool) *nat.Mapper {
	t.Helper()
	d := discover(t, r)
	l, err := d.Lister()
	if err != nil {
		t.Fatal(err)
	}
	return &nat.Mapper{Router: l, Lister: l, Force: force}
}

func TestParsePorts(t *testing.T) {
	pairs, err := nat.ParsePorts([]string{"21,42000-42002", "8021:21", "21"})
	if err != nil {
		t.Fatal(err)
	}
	want := []nat.PortPair{{21, 21}, {42000, 42000}, {42001, 42001}, {42002, 42002}, {8021, 21}}
	if !reflect.DeepEqual(pairs, want) {
		t.Errorf("%v", pairs)
	}
	for spec, part := range map[string]string{
		"0": "0", "65536": "65536", "42010-42000": "42010-42000", "1-60000": "1-60000", "abc": "abc",
		"21,,22": "21,,22", "8000-8010:9000": "8000-8010:9000", "21:22,21:23": "21:23", "-5": "-5",
	} {
		_, err := nat.ParsePorts([]string{spec})
		var se *nat.SpecError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), part) {
			t.Errorf("%q: %v", spec, err)
		}
	}
	if got := nat.CompressPorts([]uint16{42003, 21, 42000, 42001, 42002, 42005}); got != "21, 42000-42003, 42005" {
		t.Errorf("compress: %s", got)
	}
}

func TestAddIsIdempotentAndLabelled(t *testing.T) {
	r := nattest.New(t)
	m := upnpMapper(t, r, false)
	ctx := context.Background()
	reqs := nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, server, time.Hour, "")
	steps, err := m.PlanAdd(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Add(ctx, steps); err != nil {
		t.Fatal(err)
	}
	entries := r.Entries()
	if len(entries) != 12 || entries[nattest.Key{Proto: "TCP", Port: 21}].Description != "natdoctor 21/tcp" {
		t.Fatalf("router holds %v", entries)
	}
	adds := r.Actions()["AddPortMapping"]
	steps, _ = m.PlanAdd(ctx, reqs)
	for _, s := range steps {
		if s.Action != nat.ActionRenew {
			t.Errorf("second run: %s %d: %s", s.Request.Protocol, s.Request.ExternalPort, s.Action)
		}
	}
	if err := m.Add(ctx, steps); err != nil {
		t.Fatal(err)
	}
	if len(r.Entries()) != 12 || r.Actions()["AddPortMapping"]-adds != 12 {
		t.Errorf("second run changed the table or cost %d adds", r.Actions()["AddPortMapping"]-adds)
	}
}

func TestAddConflictChangesNothing(t *testing.T) {
	r := nattest.New(t)
	// Disabled, so that a restore must put it back disabled.
	r.Set("TCP", 42005, nattest.Entry{InternalClient: other.String(), InternalPort: 42005, Description: "old laptop", Enabled: false})
	before := r.Entries()
	m := upnpMapper(t, r, false)
	ctx := context.Background()
	steps, err := m.PlanAdd(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, server, time.Hour, ""))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Add(ctx, steps)
	var ce *nat.ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "10.0.1.253") || !strings.Contains(err.Error(), "42005") {
		t.Fatalf("conflict: %v", err)
	}
	if r.Actions()["AddPortMapping"] != 0 || !reflect.DeepEqual(r.Entries(), before) {
		t.Errorf("a conflict changed the router: %v", r.Entries())
	}
	// --force takes it, and a failure afterwards restores it.
	m.Force = true
	r.FailAddPort.Store(42010)
	steps, _ = m.PlanAdd(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, server, time.Hour, ""))
	err = m.Add(ctx, steps)
	var ae *nat.AddError
	if !errors.As(err, &ae) || len(ae.Left) != 0 || !strings.Contains(err.Error(), "42010") {
		t.Fatalf("failed forced add: %v", err)
	}
	if !reflect.DeepEqual(r.Entries(), before) {
		t.Errorf("router not restored: %v, want %v", r.Entries(), before)
	}
}

func TestAddFailureRollsBackOnlyWhatItMade(t *testing.T) {
	r := nattest.New(t)
	r.Set("TCP", 21, nattest.Entry{InternalClient: server.String(), InternalPort: 21, Description: "mine from before", Lease: 0, Enabled: true})
	r.FailAddPort.Store(42006)
	before := r.Entries()
	m := upnpMapper(t, r, false)
	ctx := context.Background()
	steps, _ := m.PlanAdd(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, server, time.Hour, ""))
	err := m.Add(ctx, steps)
	var ae *nat.AddError
	if !errors.As(err, &ae) || len(ae.Failed) != 1 || ae.Failed[0].Request.ExternalPort != 42006 {
		t.Fatalf("add: %v", err)
	}
	if !strings.Contains(err.Error(), "ActionFailed") || !strings.Contains(err.Error(), "router is as it was") {
		t.Errorf("message: %v", err)
	}
	after := r.Entries()
	if len(after) != 1 {
		t.Fatalf("left behind: %v", after)
	}
	if after[nattest.Key{Proto: "TCP", Port: 21}].InternalClient != before[nattest.Key{Proto: "TCP", Port: 21}].InternalClient {
		t.Errorf("the earlier mapping of 21 was touched: %v", after)
	}
}

func TestRemoveLeavesOtherHosts(t *testing.T) {
	r := nattest.New(t)
	m := upnpMapper(t, r, false)
	ctx := context.Background()
	reqs := nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, server, time.Hour, "")
	steps, _ := m.PlanAdd(ctx, reqs[:6])
	if err := m.Add(ctx, steps); err != nil {
		t.Fatal(err)
	}
	r.Set("TCP", 42008, nattest.Entry{InternalClient: other.String(), InternalPort: 42008})
	steps, err := m.PlanRemove(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, steps); err != nil {
		t.Fatal(err)
	}
	left := r.Entries()
	if len(left) != 1 || left[nattest.Key{Proto: "TCP", Port: 42008}].InternalClient != other.String() {
		t.Fatalf("after remove: %v", left)
	}
	counts := map[nat.Action]int{}
	for _, s := range steps {
		counts[s.Action]++
	}
	if counts[nat.ActionRemove] != 6 || counts[nat.ActionSkip] != 1 || counts[nat.ActionAbsent] != 5 {
		t.Errorf("actions: %v", counts)
	}
}

func TestConcurrentAddIsBounded(t *testing.T) {
	r := nattest.New(t)
	m := upnpMapper(t, r, false)
	m.Concurrency = 4
	pairs, _ := nat.ParsePorts([]string{"20000-20199"})
	ctx := context.Background()
	steps, _ := m.PlanAdd(ctx, nat.Requests(pairs, []nat.Protocol{nat.TCP}, server, time.Hour, ""))
	before := r.SOAPRequests.Load()
	if err := m.Add(ctx, steps); err != nil {
		t.Fatal(err)
	}
	if got := r.SOAPRequests.Load() - before; got != 200 {
		t.Errorf("200 ports cost %d requests, want one each", got)
	}
	if len(r.Entries()) != 200 {
		t.Errorf("%d entries", len(r.Entries()))
	}
}

func TestPMPAddAndRemove(t *testing.T) {
	r := nattest.New(t)
	d := discover(t, r)
	rt, _ := d.Router(nat.MethodNATPMP)
	m := &nat.Mapper{Router: rt}
	ctx := context.Background()
	reqs := nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, d.LocalAddr, time.Hour, "")
	steps, _ := m.PlanAdd(ctx, reqs)
	if err := m.Add(ctx, steps); err != nil {
		t.Fatal(err)
	}
	if len(r.Entries()) != 12 {
		t.Fatalf("%d mappings", len(r.Entries()))
	}
	steps, _ = m.PlanRemove(ctx, reqs)
	if err := m.Remove(ctx, steps); err != nil {
		t.Fatal(err)
	}
	if len(r.Entries()) != 0 {
		t.Errorf("left: %v", r.Entries())
	}
}

func TestKeeperRenewsRestoresAndCleansUp(t *testing.T) {
	r := nattest.New(t)
	cfg := testConfig(r)
	var mu sync.Mutex
	var events []nat.KeepEvent
	seen := make(chan string, 100)
	d := discover(t, r)
	k := &nat.Keeper{
		Requests:      nat.Requests(ftpPairs(t)[:3], []nat.Protocol{nat.TCP}, d.LocalAddr, 2*time.Second, ""),
		CheckInterval: time.Second,
		Open: func(ctx context.Context) (*nat.Mapper, error) {
			d, err := nat.Discover(ctx, cfg)
			if err != nil {
				return nil, err
			}
			rt, err := d.Router(nat.MethodNATPMP)
			if err != nil {
				return nil, err
			}
			return &nat.Mapper{Router: rt}, nil
		},
		Log: func(e nat.KeepEvent) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
			seen <- e.Kind
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	waitFor := func(kind string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case got := <-seen:
				if got == kind {
					return
				}
			case <-timeout:
				t.Fatalf("no %q event; events: %+v", kind, events)
			}
		}
	}
	waitFor("added")
	if len(r.Entries()) != 3 {
		t.Fatalf("after added: %v", r.Entries())
	}
	waitFor("renewed")
	// A router restart: table gone, epoch back to 0. Let the epoch grow
	// first so that going back is visible.
	r.Restart()
	waitFor("renewed")
	if len(r.Entries()) != 3 {
		t.Errorf("not restored after restart: %v", r.Entries())
	}
	r.Set("TCP", 9999, nattest.Entry{InternalClient: "10.0.1.253", InternalPort: 9999})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	left := r.Entries()
	if len(left) != 1 {
		t.Errorf("after stop: %v (only the other host's mapping should stay)", left)
	}
	mu.Lock()
	last := events[len(events)-1]
	mu.Unlock()
	if last.Kind != "removed" {
		t.Errorf("last event %+v", last)
	}
}

// TestAddSendsPrivilegedPortsFirst: a router that refuses port 21 by
// policy (OpenWrt's default rules) sees one request and has nothing to
// undo.
func TestAddSendsPrivilegedPortsFirst(t *testing.T) {
	r := nattest.New(t)
	r.RefuseBelow.Store(1024)
	m := upnpMapper(t, r, false)
	ctx := context.Background()
	steps, err := m.PlanAdd(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, server, time.Hour, ""))
	if err != nil {
		t.Fatal(err)
	}
	before := r.SOAPRequests.Load()
	err = m.Add(ctx, steps)
	if err == nil || !strings.Contains(err.Error(), "606") {
		t.Fatalf("add of 21 on a router refusing it: %v", err)
	}
	if n := r.SOAPRequests.Load() - before; n != 1 {
		t.Errorf("%d requests for a refused port 21, want 1 (21 first and alone, nothing to undo)", n)
	}
	if len(r.Entries()) != 0 {
		t.Errorf("left behind: %v", r.Entries())
	}
}

// TestRollbackWaitsForAQuietRouter: miniupnpd 2.3.1 stops answering PCP
// for a while after refusing a port by policy. The roll-back asks again
// until the router answers, and leaves the router as it was (on main:
// "could not undo ... remove them with natdoctor remove").
func TestRollbackWaitsForAQuietRouter(t *testing.T) {
	r := nattest.New(t)
	r.PCPRefuseBelow.Store(1024)
	r.PCPSpin.Store(int64(2500 * time.Millisecond))
	r.PCPSpinAnyway.Store(true)
	d := discover(t, r)
	rt, err := d.Router(nat.MethodPCP)
	if err != nil {
		t.Fatal(err)
	}
	m := &nat.Mapper{Router: rt}
	ctx := context.Background()
	pairs, _ := nat.ParsePorts([]string{"42000-42002", "21"})
	steps, _ := m.PlanAdd(ctx, nat.Requests(pairs, []nat.Protocol{nat.TCP}, d.LocalAddr, time.Hour, ""))
	err = m.Add(ctx, steps)
	if err == nil {
		t.Fatal("add succeeded although 21 is refused")
	}
	if !strings.Contains(err.Error(), "router is as it was") || strings.Contains(err.Error(), "could not undo") {
		t.Errorf("roll-back: %v", err)
	}
	if len(r.Entries()) != 0 {
		t.Errorf("left behind: %v", r.Entries())
	}
}

// TestPCPPreferFailureRefusesAtOnce: with PREFER_FAILURE a PCP server
// refuses a port its policy forbids instead of searching for another one
// (and going quiet meanwhile, as miniupnpd 2.3.1 does without it).
func TestPCPPreferFailureRefusesAtOnce(t *testing.T) {
	r := nattest.New(t)
	r.PCPRefuseBelow.Store(1024)
	r.PCPSpin.Store(int64(time.Minute))
	d := discover(t, r)
	rt, err := d.Router(nat.MethodPCP)
	if err != nil {
		t.Fatal(err)
	}
	m := &nat.Mapper{Router: rt}
	ctx := context.Background()
	steps, _ := m.PlanAdd(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, d.LocalAddr, time.Hour, ""))
	start := time.Now()
	err = m.Add(ctx, steps)
	var pe *nat.PCPError
	if !errors.As(err, &pe) || pe.Code != nat.PCPNotAuthorized {
		t.Fatalf("add of a refused port: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v: the router was made to search", el)
	}
	if len(r.Entries()) != 0 || !strings.Contains(err.Error(), "router is as it was") {
		t.Errorf("left %v; %v", r.Entries(), err)
	}
}

// runKeeper runs k until the test ends and returns a function that waits
// for an event of a kind.
func runKeeper(t *testing.T, k *nat.Keeper) func(kind string) {
	seen := make(chan nat.KeepEvent, 1000)
	k.Log = func(e nat.KeepEvent) { seen <- e }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return func(kind string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case e := <-seen:
				if e.Kind == "error" {
					t.Logf("keep: %s", e.Detail)
				}
				if e.Kind == kind {
					return
				}
			case <-timeout:
				t.Fatalf("no %q event", kind)
			}
		}
	}
}

// TestKeeperCostsLittle: between renewals keep asks the router one
// question per check — one bulk page of the mappings on IGD v2, the uptime
// on v1 — renews at half the granted lease with one request per mapping
// and nothing else, and after a restart (empty table, uptime from 0) adds
// the mappings again at the next check.
func TestKeeperCostsLittle(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "IGD v2", true: "IGD v1"}[v1], func(t *testing.T) {
			r := nattest.New(t, func(r *nattest.Router) { r.IGDv1 = v1 })
			d := discover(t, r)
			l, err := d.Lister()
			if err != nil {
				t.Fatal(err)
			}
			waitFor := runKeeper(t, &nat.Keeper{
				Requests:      nat.Requests(ftpPairs(t)[:3], []nat.Protocol{nat.TCP}, d.LocalAddr, 4*time.Second, ""),
				CheckInterval: time.Second, // keep's floor
				VerifyEvery:   1000,
				Open: func(context.Context) (*nat.Mapper, error) {
					return &nat.Mapper{Router: l, Lister: l, Verify: true}, nil
				},
			})
			waitFor("added")
			before := r.Actions()
			waitFor("renewed") // half of the 4 s lease: 2 s, checks each second
			waitFor("renewed")
			a := r.Actions()
			delta := func(action string) int { return a[action] - before[action] }
			if got := delta("AddPortMapping"); got != 6 {
				t.Errorf("%d AddPortMapping for two renewals of 3 mappings, want 6", got)
			}
			question, other := "GetListOfPortMappings", []string{"GetStatusInfo", "GetSpecificPortMappingEntry", "GetGenericPortMappingEntry"}
			if v1 {
				question, other = "GetStatusInfo", []string{"GetListOfPortMappings", "GetSpecificPortMappingEntry", "GetGenericPortMappingEntry"}
			}
			if n := delta(question); n < 3 {
				t.Errorf("%d %s in about 4 s of checks each second (%v)", n, question, a)
			}
			for _, o := range other {
				if n := delta(o); n != 0 {
					t.Errorf("%d %s between renewals, want none (%v)", n, o, a)
				}
			}
			r.Restart()
			if v1 {
				waitFor("router-restarted")
			}
			waitFor("restored")
			if len(r.Entries()) != 3 {
				t.Errorf("after a restart: %v", r.Entries())
			}
		})
	}
}

// TestKeeperRestoresADeletedMapping: a mapping deleted by hand (the uptime
// does not show it) comes back after the next periodic lookup.
func TestKeeperRestoresADeletedMapping(t *testing.T) {
	r := nattest.New(t)
	d := discover(t, r)
	l, err := d.Lister()
	if err != nil {
		t.Fatal(err)
	}
	waitFor := runKeeper(t, &nat.Keeper{
		Requests:      nat.Requests(ftpPairs(t)[:3], []nat.Protocol{nat.TCP}, d.LocalAddr, time.Hour, ""),
		CheckInterval: time.Second,
		VerifyEvery:   1,
		Open: func(context.Context) (*nat.Mapper, error) {
			return &nat.Mapper{Router: l, Lister: l, Verify: true}, nil
		},
	})
	waitFor("added")
	r.Remove("TCP", 21)
	waitFor("restored")
	if len(r.Entries()) != 3 {
		t.Errorf("after a deletion by hand: %v", r.Entries())
	}
}

// TestRemoveByRange: on IGD v2 a run of this host's mappings goes in one
// DeletePortMappingRange, and the whole removal of 21 + 42000-42010 costs
// three requests. miniupnpd (and the fake) removes everything in such a
// range whoever owns it, so a run never spans another host's mapping:
// that one, and its neighbours outside the request, stay.
func TestRemoveByRange(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(*nattest.Router)
		other    bool // another host holds 42005
		requests int64
		ranges   int
	}{
		{"v2", func(*nattest.Router) {}, false, 3, 1},
		{"v2, another host on 42005", func(*nattest.Router) {}, true, 4, 2},
		{"v1", func(r *nattest.Router) { r.IGDv1 = true }, false, 24, 0}, // 12 lookups, 12 deletions
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := nattest.New(t, tc.setup)
			for _, p := range []uint16{21, 41999, 42011} {
				if p == 21 {
					continue
				}
				r.Set("TCP", p, nattest.Entry{InternalClient: "10.0.1.9", InternalPort: p, Enabled: true})
			}
			for p := uint16(42000); p <= 42010; p++ {
				r.Set("TCP", p, nattest.Entry{InternalClient: server.String(), InternalPort: p, Enabled: true})
			}
			r.Set("TCP", 21, nattest.Entry{InternalClient: server.String(), InternalPort: 21, Enabled: true})
			if tc.other {
				r.Set("TCP", 42005, nattest.Entry{InternalClient: "10.0.1.9", InternalPort: 42005, Enabled: true})
			}
			m := upnpMapper(t, r, false)
			ctx := context.Background()
			before := r.SOAPRequests.Load()
			steps, err := m.PlanRemove(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, server, 0, ""))
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Remove(ctx, steps); err != nil {
				t.Fatal(err)
			}
			if n := r.SOAPRequests.Load() - before; n != tc.requests {
				t.Errorf("%d requests, want %d (%v)", n, tc.requests, r.Actions())
			}
			if n := r.Actions()["DeletePortMappingRange"]; n != tc.ranges {
				t.Errorf("%d range deletions, want %d", n, tc.ranges)
			}
			var left []uint16
			for k := range r.Entries() {
				left = append(left, k.Port)
			}
			slices.Sort(left)
			want := []uint16{41999, 42011}
			if tc.other {
				want = []uint16{41999, 42005, 42011}
			}
			if !slices.Equal(left, want) {
				t.Errorf("left %v, want %v", left, want)
			}
		})
	}
}
