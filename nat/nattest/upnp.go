package nattest

import (
	"bufio"
	"cmp"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

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
		for i, st := range r.SSDPOthers {
			other := fmt.Sprintf("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nST: %s\r\nUSN: uuid:other-%d::%s\r\nLOCATION: %s/other-%d.xml\r\n\r\n",
				st, i, st, r.http.URL, i)
			_, _ = r.ssdp.WriteToUDPAddrPort([]byte(other), from)
		}
		if r.Replay != nil {
			r.replaySSDP(from)
			continue
		}
		loc := r.Location()
		if r.LocationHost != "" {
			loc = strings.Replace(loc, r.Addr.String(), r.LocationHost, 1)
		}
		resp := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n" +
			"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:" + r.igdVersion() + "\r\n" +
			"USN: uuid:fake::urn:schemas-upnp-org:device:InternetGatewayDevice:" + r.igdVersion() + "\r\n" +
			"SERVER: nattest UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: " + loc + "\r\n\r\n"
		if r.SSDPReply != "" {
			resp = locationRE.ReplaceAllString(r.SSDPReply, "LOCATION: "+loc)
		}
		if r.SSDPOnlyST != "" {
			switch st := searchTarget(buf[:n]); {
			case st == "ssdp:all":
				resp = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nST: urn:schemas-wifialliance-org:device:WFADevice:1\r\n" +
					"USN: uuid:fake-wps::urn:schemas-wifialliance-org:device:WFADevice:1\r\nLOCATION: " + r.http.URL + "/wps.xml\r\n\r\n"
			case st != r.SSDPOnlyST:
				continue
			}
		}
		if d := time.Duration(r.SSDPDelay.Load()); d > 0 {
			time.AfterFunc(d, func() { _, _ = r.ssdp.WriteToUDPAddrPort([]byte(resp), from) })
			continue
		}
		_, _ = r.ssdp.WriteToUDPAddrPort([]byte(resp), from)
	}
}

// searchTarget is an M-SEARCH's ST.
func searchTarget(req []byte) string {
	for _, line := range strings.Split(string(req), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "ST") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// replaySSDP answers an M-SEARCH with the captured reply, from the port
// the capture came from.
func (r *Router) replaySSDP(to netip.AddrPort) {
	msg := []byte(r.Replay.ssdpReply(r.httpHost()))
	p := r.Replay.Meta.SSDPSourcePort
	if p == 0 || p == 1900 {
		_, _ = r.ssdp.WriteToUDPAddrPort(msg, to)
		return
	}
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.Addr, p)))
	if err != nil {
		r.t.Errorf("nattest: replay SSDP from port %d: %v", p, err)
		return
	}
	defer c.Close()
	_, _ = c.WriteToUDPAddrPort(msg, to)
}

// serveSSDPAlias takes M-SEARCH on the alias and answers from the
// router's own address, as the active member of a CARP pair does.
func (r *Router) serveSSDPAlias(alias *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := alias.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if !strings.HasPrefix(string(buf[:n]), "M-SEARCH * HTTP/1.1\r\n") {
			continue
		}
		r.SSDPRequests.Add(1)
		resp := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:" + r.igdVersion() + "\r\n" +
			"USN: uuid:fake::urn:schemas-upnp-org:device:InternetGatewayDevice:" + r.igdVersion() + "\r\n" +
			"SERVER: FreeBSD/14.0 UPnP/1.1 MiniUPnPd/2.3.3\r\nLOCATION: " + r.Location() + "\r\n\r\n"
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

func (r *Router) serveHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case r.Replay != nil && req.Method == http.MethodGet:
		if f, ok := r.Replay.Files[req.URL.Path]; ok {
			r.DescriptionRequests.Add(1)
			r.Replay.serve(w, req, f, r.rewrite)
			return
		}
		http.NotFound(w, req)
		return
	case r.Replay != nil && req.Method == http.MethodPost && r.Replay.isControl(req.URL.RequestURI()):
	case req.Method == http.MethodGet && req.URL.Path == "/rootDesc.xml":
		r.DescriptionRequests.Add(1)
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
	if r.Replay != nil {
		if f, ok := r.Replay.Replies[action]; ok {
			r.Replay.serve(w, req, f, r.rewrite)
			return
		}
	}
	sw := &soapWriter{ResponseWriter: w, svc: r.serviceType(req)}
	w = sw
	if r.DownControls[req.URL.RequestURI()] {
		switch action {
		case "GetStatusInfo":
			r.reply(w, action, "NewConnectionStatus", "Disconnected", "NewLastConnectionError", "ERROR_NO_CARRIER", "NewUptime", "0")
			return
		case "GetExternalIPAddress":
			r.reply(w, action, "NewExternalIPAddress", "0.0.0.0")
			return
		}
	}
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

// serviceType is the service a request names in its SOAPAction, which the
// reply names too; the fake's own WANIPConnection by default.
func (r *Router) serviceType(req *http.Request) string {
	if m := soapServiceRE.FindStringSubmatch(req.Header.Get("SOAPAction")); m != nil {
		return m[1]
	}
	return "urn:schemas-upnp-org:service:WANIPConnection:" + r.igdVersion()
}

var soapServiceRE = regexp.MustCompile(`^"?([^#"]+)#`)

// soapWriter carries the service type a reply names.
type soapWriter struct {
	http.ResponseWriter
	svc string
}

// Hijack lets misbehave take the connection over.
func (w *soapWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hj, ok := w.ResponseWriter.(http.Hijacker); ok {
		return hj.Hijack()
	}
	return nil, nil, http.ErrNotSupported
}

func (r *Router) reply(w http.ResponseWriter, action string, fields ...string) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`)
	svc := "urn:schemas-upnp-org:service:WANIPConnection:" + r.igdVersion()
	if sw, ok := w.(*soapWriter); ok {
		svc = sw.svc
	}
	fmt.Fprintf(&b, `<u:%sResponse xmlns:u="%s">`, action, svc)
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
		if r.IgnoreLease.Load() {
			lease = 0
		}
		switch {
		case key.Port == 0 || (key.Proto != "TCP" && key.Proto != "UDP"):
			r.fault(w, 402, "Invalid Args")
			return
		case r.OnlyPermanent.Load() && lease != 0:
			r.fault(w, 725, "OnlyPermanentLeasesSupported")
			return
		case r.MaxLease.Load() > 0 && lease != 0 && int64(lease) > r.MaxLease.Load():
			r.fault(w, 402, "Invalid Args")
			return
		case int32(key.Port) < r.RefuseBelow.Load():
			if c := r.RefuseCode.Load(); c != 0 {
				r.fault(w, int(c), "refused")
				return
			}
			r.fault(w, 606, "Action not authorized")
			return
		case int32(key.Port) == r.FailAddPort.Load():
			if c := r.FailAddCode.Load(); c != 0 {
				r.fault(w, int(c), "refused")
				return
			}
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
				Description: a["NewPortMappingDescription"], Lease: uint32(lease), Enabled: a["NewEnabled"] == "1", unlisted: r.UnlistedAdds.Load()}
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
		keys := r.listedKeys()
		if err != nil || idx < 0 || idx >= len(keys) {
			if r.EndOfTableBody != "" {
				w.Header().Set("Content-Type", "text/xml")
				w.WriteHeader(cmp.Or(r.EndOfTableStatus, http.StatusOK))
				_, _ = io.WriteString(w, r.EndOfTableBody)
				return
			}
			switch code := r.EndOfTable.Load(); code {
			case 0, 713:
				r.fault(w, 713, "SpecifiedArrayIndexInvalid")
			default:
				r.fault(w, int(code), "past the end")
			}
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
		if c := r.BulkListFault.Load(); c != 0 {
			r.fault(w, int(c), "Invalid Action")
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
			if !ok || e.unlisted {
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

// listedKeys are the keys a listing shows.
func (r *Router) listedKeys() []Key {
	var out []Key
	for _, k := range r.sortedKeys() {
		r.mu.Lock()
		e := r.entries[k]
		r.mu.Unlock()
		if !e.unlisted {
			out = append(out, k)
		}
	}
	return out
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
