package nat_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/nat/nattest"
)

// heapGrowth runs f and returns how much the live heap grew, in bytes.
func heapGrowth(f func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

func TestHostileEndlessHeader(t *testing.T) {
	r := nattest.New(t)
	d := discover(t, r)
	rt, _ := d.Router(nat.MethodUPnP)
	r.EndlessHeader.Store(true)
	start := time.Now()
	var err error
	grew := heapGrowth(func() { _, err = rt.ExternalAddr(context.Background()) })
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("endless header: %v after %v", err, time.Since(start))
	}
	if grew > 64<<20 {
		t.Errorf("heap grew %d MB", grew>>20)
	}
}

func TestHostileTrickle(t *testing.T) {
	r := nattest.New(t)
	cfg := testConfig(r)
	cfg.HTTPClient = nat.NewHTTPClient(time.Second)
	d, err := nat.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := d.Router(nat.MethodUPnP)
	r.Trickle.Store(true)
	start := time.Now()
	_, err = rt.ExternalAddr(context.Background())
	if err == nil || !errors.Is(err, nat.ErrNoResponse) {
		t.Errorf("trickle: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("a 1 byte per 200 ms reply held the client %v", el)
	}
}

func TestHostileTenThousandEntries(t *testing.T) {
	r := nattest.New(t)
	for i := 0; i < 10000; i++ {
		r.Set("TCP", uint16(20000+i), nattest.Entry{InternalClient: "10.0.1.9", InternalPort: uint16(20000 + i), Enabled: true})
	}
	d := discover(t, r)
	l, _ := d.Lister()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ms []nat.Mapping
	var err error
	grew := heapGrowth(func() { ms, err = l.List(ctx) })
	if err != nil || len(ms) != 10000 {
		t.Fatalf("%d entries, %v", len(ms), err)
	}
	if grew > 64<<20 {
		t.Errorf("heap grew %d MB for 10,000 entries", grew>>20)
	}
	r.Set("TCP", 40000, nattest.Entry{InternalClient: "10.0.1.9", InternalPort: 40000})
	if _, err := l.List(ctx); !errors.Is(err, nat.ErrTooLarge) {
		t.Errorf("10,001 entries: %v", err)
	}
}

func TestHostileDuplicateEntries(t *testing.T) {
	r := nattest.New(t)
	for p := uint16(42000); p <= 42010; p++ {
		r.Set("TCP", p, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: p, Enabled: true})
	}
	r.DuplicateList.Store(true)
	d := discover(t, r)
	l, _ := d.Lister()
	ms, err := l.List(context.Background())
	if err != nil || len(ms) != 11 {
		t.Errorf("duplicates: %d entries, %v", len(ms), err)
	}
}

func TestHostileAcceptsThenForgets(t *testing.T) {
	r := nattest.New(t)
	m := upnpMapper(t, r, false)
	m.Verify = true
	r.ForgetAdds.Store(true)
	ctx := context.Background()
	steps, _ := m.PlanAdd(ctx, nat.Requests(ftpPairs(t), []nat.Protocol{nat.TCP}, server, time.Hour, ""))
	err := m.Add(ctx, steps)
	if err == nil || !strings.Contains(err.Error(), "does not hold it") {
		t.Fatalf("a router that forgets its mappings passed: %v", err)
	}
	if len(r.Entries()) != 0 {
		t.Errorf("left: %v", r.Entries())
	}
}
