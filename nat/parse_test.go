package nat

import (
	"errors"
	"strings"
	"testing"
)

// A PortMappingList as miniupnpd 2.3.1 sends it (lab capture).
const miniupnpdList = `<?xml version="1.0" encoding="UTF-8"?>
<p:PortMappingList xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection"
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:schemas-upnp-org:gw:WANIPConnection http://www.upnp.org/schemas/gw/WANIPConnection-v2.xsd">
<p:PortMappingEntry><p:NewRemoteHost></p:NewRemoteHost><p:NewExternalPort>21</p:NewExternalPort><p:NewProtocol>TCP</p:NewProtocol><p:NewInternalPort>21</p:NewInternalPort><p:NewInternalClient>10.0.1.2</p:NewInternalClient><p:NewEnabled>1</p:NewEnabled><p:NewDescription>natdoctor 21/tcp</p:NewDescription><p:NewLeaseTime>3599</p:NewLeaseTime></p:PortMappingEntry>
<p:PortMappingEntry><p:NewRemoteHost></p:NewRemoteHost><p:NewExternalPort>42000</p:NewExternalPort><p:NewProtocol>TCP</p:NewProtocol><p:NewInternalPort>42000</p:NewInternalPort><p:NewInternalClient>10.0.1.253</p:NewInternalClient><p:NewEnabled>1</p:NewEnabled><p:NewDescription>other &amp; old</p:NewDescription><p:NewLeaseTime>0</p:NewLeaseTime></p:PortMappingEntry>
</p:PortMappingList>`

func TestParsePortMappingList(t *testing.T) {
	ms, err := ParsePortMappingList([]byte(miniupnpdList))
	if err != nil || len(ms) != 2 {
		t.Fatalf("%v %v", ms, err)
	}
	if ms[0].ExternalPort != 21 || ms[0].InternalAddr.String() != "10.0.1.2" || ms[0].Description != "natdoctor 21/tcp" || ms[0].Lease.Seconds() != 3599 || !ms[0].Enabled {
		t.Errorf("entry 0: %+v", ms[0])
	}
	if ms[1].Description != "other & old" || ms[1].Lease != 0 {
		t.Errorf("entry 1: %+v", ms[1])
	}
	deep := strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100)
	if _, err := ParsePortMappingList([]byte(deep)); !errors.Is(err, ErrMalformed) {
		t.Errorf("deep nesting: %v", err)
	}
	bomb := `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>`
	if _, err := ParsePortMappingList([]byte(bomb)); err == nil {
		t.Error("entity expansion accepted")
	}
}

// An SSDP answer as miniupnpd 2.3.1 sends it (lab capture).
const miniupnpdSSDP = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n" +
	"USN: uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b::urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\nEXT:\r\n" +
	"SERVER: Debian/6.18 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://10.0.1.1:5000/rootDesc.xml\r\n" +
	"OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n01-NLS: 1796094120\r\nBOOTID.UPNP.ORG: 1796094120\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n"

func TestParseSSDPResponse(t *testing.T) {
	r, err := ParseSSDPResponse([]byte(miniupnpdSSDP))
	if err != nil || r.Location.String() != "http://10.0.1.1:5000/rootDesc.xml" || !strings.Contains(r.Server, "MiniUPnPd") {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "garbage", "HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nLOCATION: file:///etc/passwd\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\nLOCATION: http://x/\r\n\r\n", strings.Repeat("A", 5000)} {
		if _, err := ParseSSDPResponse([]byte(bad)); err == nil {
			t.Errorf("accepted %.40q", bad)
		}
	}
}

func TestParsePCPResponse(t *testing.T) {
	if _, err := parsePCPResponse([]byte{0, 129, 0, 1}); !errors.Is(err, ErrPCPUnsupported) {
		t.Errorf("NAT-PMP answer: %v", err)
	}
	for _, bad := range [][]byte{nil, {2}, append([]byte{2, 0x80}, make([]byte, 21)...), append([]byte{2, 1}, make([]byte, 22)...), append([]byte{3, 0x80}, make([]byte, 22)...),
		append([]byte{2, 0x81}, make([]byte, 26)...)} {
		if _, err := parsePCPResponse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: %v", bad, err)
		}
	}
	ok := append([]byte{2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}, make([]byte, 12)...)
	r, err := parsePCPResponse(ok)
	if err != nil || r.Epoch != 7 || r.Opcode != pcpOpAnnounce {
		t.Errorf("%+v %v", r, err)
	}
}

func FuzzParsePCPResponse(f *testing.F) {
	f.Add([]byte{2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 129, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parsePCPResponse(b) })
}

func FuzzParseSSDPResponse(f *testing.F) {
	f.Add([]byte(miniupnpdSSDP))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseSSDPResponse(b) })
}

func FuzzParsePortMappingList(f *testing.F) {
	f.Add([]byte(miniupnpdList))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParsePortMappingList(b)
		if err == nil && len(ms) > maxListEntries {
			t.Fatalf("%d entries", len(ms))
		}
	})
}

func FuzzParseDeviceDescription(f *testing.F) {
	f.Add([]byte(`<root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType></device></root>`))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseDeviceDescription(b) })
}

func BenchmarkParseSSDPResponse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSSDPResponse([]byte(miniupnpdSSDP)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePortMappingList(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePortMappingList([]byte(miniupnpdList)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDeviceDescription(b *testing.B) {
	doc := []byte(`<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>r</friendlyName><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><controlURL>/ctl/IPConn</controlURL></service></serviceList></device></deviceList></device></deviceList></device></root>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDeviceDescription(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// goupnp flattens HTTP errors with %v, and net/http reports a client
// timeout as "context deadline exceeded" when the request's deadline beats
// its own timer (seen on a loaded CI machine): both are a missing answer.
func TestSOAPErrorTimeouts(t *testing.T) {
	for _, text := range []string{
		`goupnp: error performing SOAP HTTP request: Post "http://127.0.0.1:1/ctl": context deadline exceeded`,
		`goupnp: error performing SOAP HTTP request: Post "http://127.0.0.1:1/ctl": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`,
		`goupnp: error performing SOAP HTTP request: Post "http://127.0.0.1:1/ctl": net/http: timeout awaiting response headers`,
	} {
		if err := soapError("GetExternalIPAddress", errors.New(text)); !errors.Is(err, ErrNoResponse) {
			t.Errorf("%q: %v", text, err)
		}
	}
	if err := soapError("GetExternalIPAddress", errors.New("goupnp: connection refused")); errors.Is(err, ErrNoResponse) {
		t.Errorf("a refused connection is not a missing answer: %v", err)
	}
}
