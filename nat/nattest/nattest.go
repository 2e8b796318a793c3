// Package nattest is an in-process fake home router for unit tests of
// package nat: NAT-PMP (RFC 6886) and PCP (RFC 6887) on UDP port 5351, SSDP
// unicast on UDP port 1900 and a UPnP IGD (v1 or v2) over HTTP, all on a
// loopback address of its own (127.x.y.z), so tests never touch a real LAN.
//
// Its faults are switchable, so tests can play a hostile or broken router:
// silence, replies from the wrong source, result codes, oversized bodies,
// mappings that vanish.
package nattest

import (
	"crypto/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Key identifies a mapping.
type Key struct {
	Proto string // "TCP" or "UDP"
	Port  uint16 // external port
}

// Entry is a mapping held by the fake router.
type Entry struct {
	unlisted       bool // added while UnlistedAdds: listings leave it out
	InternalClient string
	InternalPort   uint16
	Description    string
	Lease          uint32
	Enabled        bool
}

// Router is a fake home router on a loopback address of its own.
type Router struct {
	Addr     netip.Addr // the router's address: use it as the gateway
	External netip.Addr // what it reports as its external address

	mu      sync.Mutex
	entries map[Key]Entry
	start   time.Time

	// Behaviour switches; set them before the calls they affect.
	Silent    atomic.Bool  // drop every NAT-PMP/PCP datagram
	DeafUntil atomic.Int64 // UnixNano: drop NAT-PMP/PCP datagrams until then (a busy or booting router)
	// PCPRefuseBelow, with PCPSpin, is miniupnpd 2.3.1 refusing a port by
	// policy over PCP: a MAP of a port below it gets no answer, and the
	// router answers nothing at all for PCPSpin.
	PCPRefuseBelow atomic.Int32
	PCPSpin        atomic.Int64 // time.Duration
	// PCPSpinAnyway spins even when the request says PREFER_FAILURE.
	PCPSpinAnyway atomic.Bool
	SSDPSilent    atomic.Bool  // ignore M-SEARCH
	SSDPDelay     atomic.Int64 // time.Duration: answer each M-SEARCH this late (miniupnpd waits up to MX)
	NoPCP         atomic.Bool  // answer PCP as a NAT-PMP-only router (version 0, UNSUPPORTED_VERSION)
	WrongSource   atomic.Bool  // answer NAT-PMP/PCP from another address
	PMPResult     atomic.Int32 // non-zero: NAT-PMP result code for every request
	PCPResult     atomic.Int32 // non-zero: PCP result code for MAP requests
	PCPBadNonce   atomic.Bool  // answer MAP with a foreign nonce
	MoveExternal  atomic.Int32 // non-zero: grant this external port instead of the one asked
	// PMPReplay (setup), when set, answers NAT-PMP and PCP with captured
	// replies (LoadPMPCapture), by version and opcode; a PCP MAP reply
	// gets the request's nonce, as the router would echo it.
	PMPReplay    map[[2]byte][]byte
	IGDv1        bool   // (setup) describe an IGD v1 (WANIPConnection:1, no bulk listing)
	LocationHost string // (setup) when set, SSDP Location names this host instead
	// SSDPOnlyST (setup), when set, is the one search target answered with
	// the IGD; ssdp:all is answered with a Wi-Fi Alliance (WPS) device
	// only, as the Sagemcom FAST3890V3 does. SSDPReply (setup), when set,
	// is the reply sent, its LOCATION replaced by the fake's.
	SSDPOnlyST string
	SSDPReply  string
	// SSDPOthers (setup) are the router's other root devices (a media
	// server, its WPS device), by search target: each M-SEARCH is answered
	// by each of them first, with a Location on the router, as boxes with
	// several descriptions do (the Orange Livebox).
	SSDPOthers  []string
	ControlHost string // (setup) when set, the description's control URL names this host
	// Replay (setup), when set, makes the router a captured device: its
	// SSDP reply, descriptions and captured SOAP replies, byte for byte
	// but for the captured address (the fake's instead); the mapping
	// table answers the actions the capture does not hold.
	Replay *Capture
	// SSDPAlias (setup), when valid, is a second address (a CARP pair's
	// shared one) where the router takes M-SEARCH too, answering from its
	// own address: use it as the gateway.
	SSDPAlias netip.Addr
	// DownControls (setup) are control URL paths whose service is not
	// connected: GetStatusInfo says Disconnected, the external address
	// is 0.0.0.0 (the idle one of two WAN connections).
	DownControls map[string]bool
	// OnChange (setup), when set, is called after every request that may
	// have changed the table, before the answer is sent, and after Set,
	// Remove and Restart: a fake NAT in front of the router follows it.
	OnChange      func()
	NoBulkList    atomic.Bool  // GetListOfPortMappings fails with HTTP 500
	BulkListFault atomic.Int32 // non-zero: GetListOfPortMappings answers with this UPnP fault (401 Invalid Action seen)
	BulkListMax   atomic.Int32 // fail bulk lists asking for more than this (0: no limit)
	BulkListCap   atomic.Int32 // return at most this many entries per bulk list, whatever was asked (0: no cap)
	OnlyPermanent atomic.Bool  // refuse finite UPnP leases with 725
	MaxLease      atomic.Int64 // non-zero: refuse finite UPnP leases longer than this many seconds with 402
	RefuseBelow   atomic.Int32 // refuse UPnP mappings below this port with 606
	RefuseCode    atomic.Int32 // non-zero: the fault RefuseBelow answers with instead of 606 (718 seen)
	FailAddPort   atomic.Int32 // fail AddPortMapping of this port with 501
	FailAddCode   atomic.Int32 // non-zero: the fault FailAddPort answers with instead of 501
	ForgetAdds    atomic.Bool  // accept AddPortMapping but keep nothing
	IgnoreLease   atomic.Bool  // accept any lease, but hold the mapping permanently (lease 0)
	UnlistedAdds  atomic.Bool  // hold what AddPortMapping adds, but leave it out of every listing (GetSpecificPortMappingEntry finds it)
	BodyPadding   atomic.Int64 // pad SOAP replies with this many bytes
	EndlessHeader atomic.Bool  // answer SOAP with a header line that never ends
	Trickle       atomic.Bool  // answer SOAP one byte at a time, slowly
	DuplicateList atomic.Bool  // list every entry twice
	EndOfTable    atomic.Int32 // non-zero: the fault GetGenericPortMappingEntry answers past the end (713 by the spec; 714, 402 seen)
	// EndOfTableBody (setup), when set, is what GetGenericPortMappingEntry
	// answers past the end instead of a fault: a body that is no SOAP
	// reply, with status EndOfTableStatus (200 when 0).
	EndOfTableBody   string
	EndOfTableStatus int
	ExternalAddrIs   atomic.Value // string: override GetExternalIPAddress's answer

	// Request counters.
	PMPRequests  atomic.Int64
	PCPRequests  atomic.Int64
	SSDPRequests atomic.Int64
	SOAPRequests atomic.Int64
	// DescriptionRequests counts GETs of the device description.
	DescriptionRequests atomic.Int64

	actionsMu sync.Mutex
	actions   map[string]int

	udp, ssdp, wrong *net.UDPConn
	http             *httptest.Server
	otherPorts       map[string]*httptest.Server // by the captured host:port they stand for
	t                testing.TB
}

var nextAddr atomic.Uint32

// New starts a fake router on a fresh loopback address and stops it when t
// ends. setup runs before the router serves: the plain (non-atomic) fields
// are set there.
func New(t testing.TB, setup ...func(*Router)) *Router {
	t.Helper()
	r := &Router{
		External: netip.MustParseAddr("198.51.100.7"),
		entries:  map[Key]Entry{},
		actions:  map[string]int{},
		start:    time.Now(),
		t:        t,
	}
	var err error
	for tries := 0; tries < 64; tries++ {
		n := nextAddr.Add(1)
		var b [4]byte
		if _, rerr := rand.Read(b[:]); rerr != nil {
			t.Fatal(rerr)
		}
		// 127.<random>.<random>.<counter>: unique per router in this process
		// and unlikely to collide with other test processes.
		r.Addr = netip.AddrFrom4([4]byte{127, b[0] | 1, b[1], byte(n%250 + 2)})
		if r.udp, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.Addr, 5351))); err != nil {
			continue
		}
		if r.ssdp, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.Addr, 1900))); err != nil {
			r.udp.Close()
			continue
		}
		break
	}
	if err != nil {
		t.Fatalf("nattest: no free loopback address: %v", err)
	}
	wrongAddr := netip.AddrFrom4([4]byte{127, r.Addr.As4()[1], r.Addr.As4()[2], r.Addr.As4()[3] ^ 0x80})
	if r.wrong, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(wrongAddr, 0))); err != nil {
		t.Fatalf("nattest: %v", err)
	}
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(r.Addr, 0).String())
	if err != nil {
		t.Fatalf("nattest: %v", err)
	}
	for _, f := range setup {
		f(r)
	}
	r.http = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(r.serveHTTP)}}
	r.http.Start()
	if r.Replay != nil {
		r.serveOtherPorts()
	}
	go r.servePMP()
	go r.serveSSDP()
	if r.SSDPAlias.IsValid() {
		alias, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.SSDPAlias, 1900)))
		if err != nil {
			t.Fatalf("nattest: SSDP alias: %v", err)
		}
		t.Cleanup(func() { alias.Close() })
		go r.serveSSDPAlias(alias)
	}
	t.Cleanup(r.Close)
	return r
}

// Close stops the router.
func (r *Router) Close() {
	r.udp.Close()
	r.ssdp.Close()
	r.wrong.Close()
	r.http.CloseClientConnections()
	r.http.Close()
}

// Restart forgets every mapping and starts a new epoch, like a reboot.
func (r *Router) Restart() {
	defer r.changed()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = map[Key]Entry{}
	r.start = time.Now()
}

// Set puts a mapping in the table, as another host or an earlier run would.
func (r *Router) Set(proto string, port uint16, e Entry) {
	defer r.changed()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries[Key{proto, port}] = e
}

// Remove deletes a mapping from the table, as the router's web page would.
func (r *Router) Remove(proto string, port uint16) {
	defer r.changed()
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.entries, Key{proto, port})
}

// Entries returns a copy of the mapping table.
func (r *Router) Entries() map[Key]Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Key]Entry, len(r.entries))
	for k, v := range r.entries {
		out[k] = v
	}
	return out
}

// Actions returns how many times each SOAP action was called.
func (r *Router) Actions() map[string]int {
	r.actionsMu.Lock()
	defer r.actionsMu.Unlock()
	out := map[string]int{}
	for k, v := range r.actions {
		out[k] = v
	}
	return out
}

// Location returns the device description URL.
func (r *Router) Location() string { return r.http.URL + "/rootDesc.xml" }

var soapActionRE = regexp.MustCompile(`#(\w+)"?$`)
