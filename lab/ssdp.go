package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// SSDP paths a router may answer on: home routers differ (eero answers
// multicast M-SEARCH only, some firmwares unicast only).
const (
	SSDPMulticastOnly = "multicast-only" // unicast M-SEARCH to the router is dropped
	SSDPUnicastOnly   = "unicast-only"   // multicast M-SEARCH never reaches the router
)

// RouterSSDP makes the router hear M-SEARCH on one path only (the other
// is dropped by a counted rule in its input chain; DroppedSSDP reads the
// count).
func (l *Lab) RouterSSDP(only string) {
	l.t.Helper()
	var match string
	switch only {
	case SSDPMulticastOnly:
		match = "ip daddr " + RouterLANAddr.String()
	case SSDPUnicastOnly:
		match = "ip daddr 239.255.255.250"
	default:
		l.t.Fatalf("lab: no SSDP path %q", only)
	}
	l.nft(fmt.Sprintf("add rule inet filter silent iifname \"br0\" %s udp dport 1900 counter drop comment \"ssdp-%s\"\n", match, only))
}

// DroppedSSDP is how many M-SEARCH datagrams RouterSSDP's rule dropped.
func (l *Lab) DroppedSSDP() int {
	l.t.Helper()
	out := l.must("ip", "netns", "exec", l.Router.NS, "nft", "list", "chain", "inet", "filter", "silent")
	m := regexp.MustCompile(`counter packets (\d+) bytes \d+ drop comment "ssdp-`).FindStringSubmatch(out)
	if m == nil {
		l.t.Fatalf("lab: no SSDP drop rule:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// OtherIGDPort is where the other LAN host's Internet Gateway Device
// serves its description.
const OtherIGDPort = 49000

// OtherIGDFriendly is the friendly name of the other host's IGD.
const OtherIGDFriendly = "natdoctor-lab second firewall"

// StartOtherIGD makes host h (the other LAN host) claim to be an Internet
// Gateway Device, as access points and second firewalls do: it answers
// every multicast M-SEARCH for an IGD at once, and serves a description
// with a WANIPConnection on itself. It logs each M-SEARCH it answered
// (OtherIGDLog). It returns the Location it answers with.
func (l *Lab) StartOtherIGD(h *Host) string {
	l.t.Helper()
	dir := filepath.Join(l.Dir, "svc-"+h.Name)
	www := filepath.Join(dir, "igd")
	if err := os.MkdirAll(www, 0o755); err != nil {
		l.t.Fatal(err)
	}
	addr := DefaultHostLAN.String()
	loc := fmt.Sprintf("http://%s:%d/rootDesc.xml", addr, OtherIGDPort)
	desc := strings.NewReplacer("FRIENDLY", OtherIGDFriendly).Replace(otherIGDDesc)
	if err := os.WriteFile(filepath.Join(www, "rootDesc.xml"), []byte(desc), 0o644); err != nil {
		l.t.Fatal(err)
	}
	script := filepath.Join(dir, "ssdp-responder.py")
	if err := os.WriteFile(script, []byte(ssdpResponder), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.runOn(h, fmt.Sprintf("tcp:%d", OtherIGDPort), "/usr/bin/python3", "-m", "http.server", strconv.Itoa(OtherIGDPort), "--bind", addr, "--directory", www)
	l.runOn(h, "udp:1900", "/usr/bin/python3", script, loc, addr, l.OtherIGDLog(h))
	return loc
}

// OtherIGDLog is where StartOtherIGD's responder logs what it answered.
func (l *Lab) OtherIGDLog(h *Host) string {
	return filepath.Join(l.Dir, "svc-"+h.Name, "ssdp-responder.log")
}

// ssdpResponder answers multicast M-SEARCH for an IGD with argv[1] as
// Location, joined on the interface of address argv[2]; it logs the
// address of each searcher it answered to argv[3].
const ssdpResponder = `import socket, struct, sys
loc, addr, log = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("239.255.255.250", 1900))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(addr)))
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out.bind((addr, 0))
while True:
    data, frm = s.recvfrom(2048)
    st = None
    for line in data.split(b"\r\n"):
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"st":
            st = v.strip().decode("ascii", "replace")
    if not data.startswith(b"M-SEARCH") or st is None or "InternetGatewayDevice" not in st:
        continue
    reply = ("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: %s\r\n"
             "SERVER: Linux UPnP/1.0 second-firewall\r\nST: %s\r\nUSN: uuid:00000000-0000-0000-0000-00000000beef::%s\r\n\r\n") % (loc, st, st)
    out.sendto(reply.encode(), frm)
    with open(log, "a") as f:
        f.write("answered %s:%d for %s\n" % (frm[0], frm[1], st))
`

// otherIGDDesc is a minimal IGD v1 description on the other host.
const otherIGDDesc = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>FRIENDLY</friendlyName>
<manufacturer>natdoctor lab</manufacturer>
<modelName>second firewall</modelName>
<UDN>uuid:00000000-0000-0000-0000-00000000beef</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<friendlyName>WANDevice</friendlyName>
<UDN>uuid:00000000-0000-0000-0000-00000000bee0</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<friendlyName>WANConnectionDevice</friendlyName>
<UDN>uuid:00000000-0000-0000-0000-00000000bee1</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>/WANIPCn.xml</SCPDURL>
<controlURL>/ctl/IPConn</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>
`
