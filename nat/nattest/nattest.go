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
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
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
	IGDv1         bool         // (setup) describe an IGD v1 (WANIPConnection:1, no bulk listing)
	LocationHost  string       // (setup) when set, SSDP Location names this host instead
	ControlHost   string       // (setup) when set, the description's control URL names this host
	// OnChange (setup), when set, is called after every request that may
	// have changed the table, before the answer is sent, and after Set,
	// Remove and Restart: a fake NAT in front of the router follows it.
	OnChange       func()
	NoBulkList     atomic.Bool  // GetListOfPortMappings fails with HTTP 500
	BulkListMax    atomic.Int32 // fail bulk lists asking for more than this (0: no limit)
	BulkListCap    atomic.Int32 // return at most this many entries per bulk list, whatever was asked (0: no cap)
	OnlyPermanent  atomic.Bool  // refuse finite UPnP leases with 725
	RefuseBelow    atomic.Int32 // refuse UPnP mappings below this port with 606
	FailAddPort    atomic.Int32 // fail AddPortMapping of this port with 501
	ForgetAdds     atomic.Bool  // accept AddPortMapping but keep nothing
	BodyPadding    atomic.Int64 // pad SOAP replies with this many bytes
	EndlessHeader  atomic.Bool  // answer SOAP with a header line that never ends
	Trickle        atomic.Bool  // answer SOAP one byte at a time, slowly
	DuplicateList  atomic.Bool  // list every entry twice
	ExternalAddrIs atomic.Value // string: override GetExternalIPAddress's answer

	// Request counters.
	PMPRequests  atomic.Int64
	PCPRequests  atomic.Int64
	SSDPRequests atomic.Int64
	SOAPRequests atomic.Int64

	actionsMu sync.Mutex
	actions   map[string]int

	udp, ssdp, wrong *net.UDPConn
	http             *httptest.Server
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
	go r.servePMP()
	go r.serveSSDP()
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

func (r *Router) epoch() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint32(time.Since(r.start) / time.Second)
}

// --- NAT-PMP and PCP ---

func (r *Router) servePMP() {
	buf := make([]byte, 1200)
	for {
		n, from, err := r.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if r.Silent.Load() || n < 2 || time.Now().UnixNano() < r.DeafUntil.Load() {
			continue
		}
		req := append([]byte(nil), buf[:n]...)
		var resp []byte
		switch req[0] {
		case 0:
			r.PMPRequests.Add(1)
			resp = r.pmp(req, from)
		case 2:
			r.PCPRequests.Add(1)
			resp = r.pcp(req, from)
		default:
			continue
		}
		r.changed()
		if resp == nil {
			continue
		}
		conn := r.udp
		if r.WrongSource.Load() {
			conn = r.wrong
		}
		_, _ = conn.WriteToUDPAddrPort(resp, from)
	}
}

func (r *Router) pmp(req []byte, from netip.AddrPort) []byte {
	op := req[1]
	if op == 0 {
		resp := make([]byte, 12)
		resp[1] = 128
		binary.BigEndian.PutUint16(resp[2:4], uint16(r.PMPResult.Load()))
		binary.BigEndian.PutUint32(resp[4:8], r.epoch())
		copy(resp[8:12], r.External.AsSlice())
		return resp
	}
	if (op != 1 && op != 2) || len(req) < 12 {
		resp := make([]byte, 8)
		resp[1] = 128 + op
		binary.BigEndian.PutUint16(resp[2:4], 5)
		return resp
	}
	proto := "UDP"
	if op == 2 {
		proto = "TCP"
	}
	internal := binary.BigEndian.Uint16(req[4:6])
	external := binary.BigEndian.Uint16(req[6:8])
	lifetime := binary.BigEndian.Uint32(req[8:12])
	resp := make([]byte, 16)
	resp[1] = 128 + op
	binary.BigEndian.PutUint16(resp[2:4], uint16(r.PMPResult.Load()))
	binary.BigEndian.PutUint32(resp[4:8], r.epoch())
	binary.BigEndian.PutUint16(resp[8:10], internal)
	if r.PMPResult.Load() == 0 {
		external, lifetime = r.mapFor(from.Addr().String(), proto, internal, external, lifetime, "NAT-PMP")
	}
	binary.BigEndian.PutUint16(resp[10:12], external)
	binary.BigEndian.PutUint32(resp[12:16], lifetime)
	return resp
}

// mapFor creates, renews or (lifetime 0) deletes the self-mapping of
// internal and returns the granted external port and lifetime.
func (r *Router) mapFor(client, proto string, internal, external uint16, lifetime uint32, label string) (uint16, uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lifetime == 0 {
		for k, e := range r.entries {
			if k.Proto == proto && e.InternalPort == internal && e.InternalClient == client {
				delete(r.entries, k)
			}
		}
		return 0, 0
	}
	if m := r.MoveExternal.Load(); m != 0 {
		external = uint16(m)
	}
	if e, ok := r.entries[Key{proto, external}]; ok && e.InternalClient != client {
		external = 0 // taken: pick another
	}
	if external == 0 {
		for p := uint16(50000); p < 60000; p++ {
			if _, ok := r.entries[Key{proto, p}]; !ok {
				external = p
				break
			}
		}
	}
	if lifetime > 86400 {
		lifetime = 86400
	}
	r.entries[Key{proto, external}] = Entry{InternalClient: client, InternalPort: internal, Lease: lifetime, Enabled: true,
		Description: fmt.Sprintf("%s %d %s", label, external, strings.ToLower(proto))}
	return external, lifetime
}

func (r *Router) pcp(req []byte, from netip.AddrPort) []byte {
	if r.NoPCP.Load() {
		resp := make([]byte, 8)
		resp[1] = 128 + req[1]
		binary.BigEndian.PutUint16(resp[2:4], 1) // UNSUPPORTED_VERSION, in NAT-PMP form
		return resp
	}
	if len(req) < 24 {
		return nil
	}
	op := req[1] & 0x7f
	resp := make([]byte, 24)
	resp[0] = 2
	resp[1] = 0x80 | op
	binary.BigEndian.PutUint32(resp[8:12], r.epoch())
	switch op {
	case 0: // ANNOUNCE
		return resp
	case 1: // MAP
		if len(req) < 60 {
			resp[3] = 3 // MALFORMED_REQUEST
			return resp
		}
		p := req[24:60]
		out := make([]byte, 36)
		copy(out, p)
		if r.PCPBadNonce.Load() {
			out[0] ^= 0xff
		}
		proto := "TCP"
		if p[12] == 17 {
			proto = "UDP"
		}
		lifetime := binary.BigEndian.Uint32(req[4:8])
		internal := binary.BigEndian.Uint16(p[16:18])
		external := binary.BigEndian.Uint16(p[18:20])
		if int32(external) < r.PCPRefuseBelow.Load() && lifetime > 0 {
			if len(req) >= 64 && req[60] == 2 && !r.PCPSpinAnyway.Load() { // PREFER_FAILURE: refuse at once
				resp[3] = 2 // NOT_AUTHORIZED
				return append(resp, out...)
			}
			r.DeafUntil.Store(time.Now().Add(time.Duration(r.PCPSpin.Load())).UnixNano())
			return nil
		}
		if c := r.PCPResult.Load(); c != 0 {
			resp[3] = byte(c)
		} else {
			external, lifetime = r.mapFor(from.Addr().String(), proto, internal, external, lifetime, "PCP")
		}
		binary.BigEndian.PutUint32(resp[4:8], lifetime)
		binary.BigEndian.PutUint16(out[18:20], external)
		ext := netip.AddrFrom16(netip.AddrFrom4(r.External.As4()).As16()).As16()
		ext[10], ext[11] = 0xff, 0xff
		copy(out[20:36], ext[:])
		return append(resp, out...)
	}
	resp[3] = 4 // UNSUPP_OPCODE
	return resp
}

// --- SSDP ---

func (r *Router) serveSSDP() {
	buf := make([]byte, 2048)
	for {
		n, from, err := r.ssdp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if r.SSDPSilent.Load() || !strings.HasPrefix(string(buf[:n]), "M-SEARCH * HTTP/1.1\r\n") {
			continue
		}
		r.SSDPRequests.Add(1)
		loc := r.Location()
		if r.LocationHost != "" {
			loc = strings.Replace(loc, r.Addr.String(), r.LocationHost, 1)
		}
		resp := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n" +
			"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:" + r.igdVersion() + "\r\n" +
			"USN: uuid:fake::urn:schemas-upnp-org:device:InternetGatewayDevice:" + r.igdVersion() + "\r\n" +
			"SERVER: nattest UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: " + loc + "\r\n\r\n"
		if d := time.Duration(r.SSDPDelay.Load()); d > 0 {
			time.AfterFunc(d, func() { _, _ = r.ssdp.WriteToUDPAddrPort([]byte(resp), from) })
			continue
		}
		_, _ = r.ssdp.WriteToUDPAddrPort([]byte(resp), from)
	}
}

func (r *Router) igdVersion() string {
	if r.IGDv1 {
		return "1"
	}
	return "2"
}

// --- UPnP over HTTP ---

func (r *Router) description() string {
	v := r.igdVersion()
	ctl := "/ctl/IPConn"
	if r.ControlHost != "" {
		ctl = "http://" + r.ControlHost + "/ctl/IPConn"
	}
	return `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>1</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:` + v + `</deviceType>
<friendlyName>nattest router</friendlyName><manufacturer>Fake Networks</manufacturer>
<modelName>FakeGate</modelName><modelNumber>1.0</modelNumber><UDN>uuid:fake</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:` + v + `</deviceType><UDN>uuid:fake-wan</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:` + v + `</deviceType><UDN>uuid:fake-wanconn</UDN>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:` + v + `</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>` + ctl + `</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL><SCPDURL>/WANIPCn.xml</SCPDURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>`
}

var soapActionRE = regexp.MustCompile(`#(\w+)"?$`)

func (r *Router) serveHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case req.Method == http.MethodGet && req.URL.Path == "/rootDesc.xml":
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, r.description())
		return
	case req.Method == http.MethodPost && req.URL.Path == "/ctl/IPConn":
	default:
		http.NotFound(w, req)
		return
	}
	r.SOAPRequests.Add(1)
	if r.EndlessHeader.Load() || r.Trickle.Load() {
		r.misbehave(w)
		return
	}
	m := soapActionRE.FindStringSubmatch(req.Header.Get("SOAPAction"))
	if m == nil {
		http.Error(w, "no SOAPAction", http.StatusBadRequest)
		return
	}
	action := m[1]
	r.actionsMu.Lock()
	r.actions[action]++
	r.actionsMu.Unlock()
	args, err := soapArgs(io.LimitReader(req.Body, 1<<16))
	if err != nil {
		r.fault(w, 402, "Invalid Args")
		return
	}
	r.action(w, action, args)
	r.changed() // before the answer leaves: the handler's reply is buffered
}

// changed tells OnChange, if set, that the table may have changed.
func (r *Router) changed() {
	if r.OnChange != nil {
		r.OnChange()
	}
}

func soapArgs(body io.Reader) (map[string]string, error) {
	dec := xml.NewDecoder(body)
	args := map[string]string{}
	depth, field := 0, ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return args, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 4 { // Envelope > Body > Action > Arg
				field = t.Name.Local
				args[field] = ""
			}
		case xml.CharData:
			if field != "" {
				args[field] += string(t)
			}
		case xml.EndElement:
			depth--
			field = ""
		}
	}
}

// misbehave takes the connection over and sends an endless header or a
// slow trickle, until the client gives up (bounded: 100 MB or 60 s).
func (r *Router) misbehave(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	end := time.Now().Add(60 * time.Second)
	if r.EndlessHeader.Load() {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nX-Pad: ")
		chunk := strings.Repeat("a", 64<<10)
		for sent := 0; sent < 100<<20 && time.Now().Before(end); sent += len(chunk) {
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, chunk); err != nil {
				return
			}
		}
		return
	}
	msg := "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<s:Envelope>"
	for i := 0; time.Now().Before(end); i++ {
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte{msg[i%len(msg)]}); err != nil {
			return
		}
		time.Sleep(200 * time.Millisecond) // the trickle itself: the fake is slow on purpose
	}
}

func (r *Router) reply(w http.ResponseWriter, action string, fields ...string) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`)
	fmt.Fprintf(&b, `<u:%sResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:%s">`, action, r.igdVersion())
	for i := 0; i+1 < len(fields); i += 2 {
		fmt.Fprintf(&b, "<%s>%s</%s>", fields[i], html.EscapeString(fields[i+1]), fields[i])
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	io.WriteString(w, b.String())
	if pad := r.BodyPadding.Load(); pad > 0 {
		// Inside the action element, so that a parser has to read it all.
		chunk := strings.Repeat(" ", 64<<10)
		for written := int64(0); written < pad; written += int64(len(chunk)) {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}
	fmt.Fprintf(w, `</u:%sResponse></s:Body></s:Envelope>`, action)
}

func (r *Router) fault(w http.ResponseWriter, code int, desc string) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, desc)
}

func (r *Router) action(w http.ResponseWriter, action string, a map[string]string) {
	port := func(k string) uint16 { n, _ := strconv.ParseUint(strings.TrimSpace(a[k]), 10, 16); return uint16(n) }
	switch action {
	case "GetExternalIPAddress":
		ext := r.External.String()
		if v, ok := r.ExternalAddrIs.Load().(string); ok {
			ext = v
		}
		r.reply(w, action, "NewExternalIPAddress", ext)
	case "GetStatusInfo":
		r.reply(w, action, "NewConnectionStatus", "Connected", "NewLastConnectionError", "ERROR_NONE",
			"NewUptime", strconv.Itoa(int(r.epoch())))
	case "AddPortMapping":
		key := Key{strings.ToUpper(a["NewProtocol"]), port("NewExternalPort")}
		lease, _ := strconv.ParseUint(a["NewLeaseDuration"], 10, 32)
		switch {
		case key.Port == 0 || (key.Proto != "TCP" && key.Proto != "UDP"):
			r.fault(w, 402, "Invalid Args")
			return
		case r.OnlyPermanent.Load() && lease != 0:
			r.fault(w, 725, "OnlyPermanentLeasesSupported")
			return
		case int32(key.Port) < r.RefuseBelow.Load():
			r.fault(w, 606, "Action not authorized")
			return
		case int32(key.Port) == r.FailAddPort.Load():
			r.fault(w, 501, "Action Failed")
			return
		}
		r.mu.Lock()
		if e, ok := r.entries[key]; ok && e.InternalClient != a["NewInternalClient"] {
			r.mu.Unlock()
			r.fault(w, 718, "ConflictInMappingEntry")
			return
		}
		if !r.ForgetAdds.Load() {
			r.entries[key] = Entry{InternalClient: a["NewInternalClient"], InternalPort: port("NewInternalPort"),
				Description: a["NewPortMappingDescription"], Lease: uint32(lease), Enabled: a["NewEnabled"] == "1"}
		}
		r.mu.Unlock()
		r.reply(w, action)
	case "DeletePortMapping":
		key := Key{strings.ToUpper(a["NewProtocol"]), port("NewExternalPort")}
		r.mu.Lock()
		_, ok := r.entries[key]
		delete(r.entries, key)
		r.mu.Unlock()
		if !ok {
			r.fault(w, 714, "NoSuchEntryInArray")
			return
		}
		r.reply(w, action)
	case "DeletePortMappingRange":
		// miniupnpd 2.3.1: every mapping in the range goes, whoever owns
		// it (NewManage is ignored); 730 when there is none.
		if r.IGDv1 {
			r.fault(w, 401, "Invalid Action")
			return
		}
		start, end, proto := port("NewStartPort"), port("NewEndPort"), strings.ToUpper(a["NewProtocol"])
		if start > end {
			r.fault(w, 733, "InconsistentParameter")
			return
		}
		n := 0
		r.mu.Lock()
		for k := range r.entries {
			if k.Proto == proto && k.Port >= start && k.Port <= end {
				delete(r.entries, k)
				n++
			}
		}
		r.mu.Unlock()
		if n == 0 {
			r.fault(w, 730, "PortMappingNotFound")
			return
		}
		r.reply(w, action)
	case "GetSpecificPortMappingEntry":
		key := Key{strings.ToUpper(a["NewProtocol"]), port("NewExternalPort")}
		r.mu.Lock()
		e, ok := r.entries[key]
		r.mu.Unlock()
		if !ok {
			r.fault(w, 714, "NoSuchEntryInArray")
			return
		}
		r.reply(w, action, "NewInternalPort", strconv.Itoa(int(e.InternalPort)), "NewInternalClient", e.InternalClient,
			"NewEnabled", boolStr(e.Enabled), "NewPortMappingDescription", e.Description, "NewLeaseDuration", strconv.Itoa(int(e.Lease)))
	case "GetGenericPortMappingEntry":
		idx, err := strconv.Atoi(strings.TrimSpace(a["NewPortMappingIndex"]))
		keys := r.sortedKeys()
		if err != nil || idx < 0 || idx >= len(keys) {
			r.fault(w, 713, "SpecifiedArrayIndexInvalid")
			return
		}
		k := keys[idx]
		e := r.Entries()[k]
		r.reply(w, action, "NewRemoteHost", "", "NewExternalPort", strconv.Itoa(int(k.Port)), "NewProtocol", k.Proto,
			"NewInternalPort", strconv.Itoa(int(e.InternalPort)), "NewInternalClient", e.InternalClient,
			"NewEnabled", boolStr(e.Enabled), "NewPortMappingDescription", e.Description, "NewLeaseDuration", strconv.Itoa(int(e.Lease)))
	case "GetListOfPortMappings":
		if r.IGDv1 {
			r.fault(w, 401, "Invalid Action")
			return
		}
		n, _ := strconv.Atoi(strings.TrimSpace(a["NewNumberOfPorts"]))
		if r.NoBulkList.Load() || (r.BulkListMax.Load() > 0 && int32(n) > r.BulkListMax.Load()) {
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		if c := int(r.BulkListCap.Load()); c > 0 && (n == 0 || n > c) {
			n = c
		}
		start, end, proto := port("NewStartPort"), port("NewEndPort"), strings.ToUpper(a["NewProtocol"])
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><p:PortMappingList xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection">`)
		count := 0
		r.mu.Lock()
		// Newest first would be miniupnpd's order; descending ports make the
		// same point: a page is not sorted the way a client might assume.
		for p := int(end); p >= int(start) && (n == 0 || count < n); p-- {
			k := Key{proto, uint16(p)}
			e, ok := r.entries[k]
			if !ok {
				continue
			}
			entry := fmt.Sprintf("<p:PortMappingEntry><p:NewRemoteHost></p:NewRemoteHost><p:NewExternalPort>%d</p:NewExternalPort><p:NewProtocol>%s</p:NewProtocol><p:NewInternalPort>%d</p:NewInternalPort><p:NewInternalClient>%s</p:NewInternalClient><p:NewEnabled>%s</p:NewEnabled><p:NewDescription>%s</p:NewDescription><p:NewLeaseTime>%d</p:NewLeaseTime></p:PortMappingEntry>",
				k.Port, k.Proto, e.InternalPort, e.InternalClient, boolStr(e.Enabled), html.EscapeString(e.Description), e.Lease)
			b.WriteString(entry)
			if r.DuplicateList.Load() {
				b.WriteString(entry)
			}
			count++
		}
		r.mu.Unlock()
		b.WriteString("</p:PortMappingList>")
		if count == 0 {
			r.fault(w, 730, "PortMappingNotFound")
			return
		}
		r.reply(w, action, "NewPortListing", b.String())
	default:
		r.fault(w, 401, "Invalid Action")
	}
}

func (r *Router) sortedKeys() []Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]Key, 0, len(r.entries))
	for k := range r.entries {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Proto != keys[j].Proto {
			return keys[i].Proto < keys[j].Proto
		}
		return keys[i].Port < keys[j].Port
	})
	return keys
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
