package nat

import (
	"bufio"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// IPv6 firewall pinholes (UPnP IGD v2, WANIPv6FirewallControl:1): over
// IPv6 the router translates nothing; it filters, and a pinhole lets
// inbound connections to one address and port through. A pinhole is named
// by the UniqueID the router returns, and renewed and deleted by it.

// Pinhole is an inbound IPv6 opening the router made.
type Pinhole struct {
	// Method is how it was opened: upnp (named by ID) or pcp (a MAP for
	// this host's IPv6 address, named by its nonce, which natdoctor derives
	// again from its key).
	Method     Method        `json:"method"`
	ID         uint16        `json:"id,omitempty"`
	Protocol   Protocol      `json:"protocol"`
	Addr       netip.Addr    `json:"address"`
	Port       uint16        `json:"port"`
	Lease      time.Duration `json:"lease_ns"`
	Created    time.Time     `json:"created"`
	ControlURL string        `json:"control_url"`
}

// Pinholer opens and closes pinholes through the router's
// WANIPv6FirewallControl service, over IPv6 (the router checks that a
// pinhole's address is the caller's own).
type Pinholer struct {
	fw  *internetgateway2.WANIPv6FirewallControl1
	pcp *PCP // for ports the router refuses over UPnP (below 1024), when PCP answers
	// Local is this host's global IPv6 address, the pinholes' target.
	Local      netip.Addr
	ControlURL string
}

// OpenPinholer finds the WANIPv6FirewallControl service in the device
// description an IPv4 discovery read (d.UPnP), and speaks to it at the
// same path and port on the router's IPv6 address gw6 (miniupnpd serves
// both families on one port).
func OpenPinholer(ctx context.Context, cfg Config, d *Discovery, gw6 netip.Addr) (*Pinholer, error) {
	if d == nil || d.UPnP.Device == nil {
		return nil, fmt.Errorf("%w: no UPnP IGD on the router, so no IPv6 firewall service", ErrCannotList)
	}
	loc, err := url.Parse(d.UPnP.Device.Location)
	if err != nil {
		return nil, fmt.Errorf("%w: Location %q", ErrMalformed, d.UPnP.Device.Location)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = NewHTTPClient(DefaultHTTPTimeout)
	}
	root, err := fetchDescription(ctx, cfg.HTTPClient, loc)
	if err != nil {
		return nil, err
	}
	ctl := firewallControl(root)
	if ctl == "" {
		return nil, fmt.Errorf("the router's UPnP IGD (%s %s) has no IPv6 firewall service (WANIPv6FirewallControl): open the ports in its IPv6 firewall settings by hand",
			d.UPnP.Device.Manufacturer, d.UPnP.Device.ModelName)
	}
	cu, err := url.Parse(ctl)
	if err != nil {
		return nil, fmt.Errorf("%w: control URL %q", ErrMalformed, ctl)
	}
	host := gw6.WithZone("").String()
	if z := gw6.Zone(); z != "" {
		host += "%25" + z
	}
	u := &url.URL{Scheme: "http", Host: "[" + host + "]:" + loc.Port(), Path: cu.Path, RawQuery: cu.RawQuery}
	local, err := LocalGlobal6(gw6)
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if stable, _ := StableAddr6(local); stable != local {
		// The route's source is a privacy address: a pinhole for it
		// would close when it changes. The router opens pinholes only for
		// the caller's address, so ask from the stable one.
		local = stable
		hc = newHTTPClient(DefaultHTTPTimeout, local)
	}
	sc := goupnp.ServiceClient{SOAPClient: soapClient(u, hc)}
	ph := &Pinholer{fw: &internetgateway2.WANIPv6FirewallControl1{ServiceClient: sc}, Local: local, ControlURL: u.String()}
	key := cfg.PCPKey
	if key == nil {
		key, _ = LoadPCPKey() // without a kept key, a PCP pinhole could not be closed later
	}
	if key != nil && !gw6.IsLinkLocalUnicast() {
		ph.pcp = NewPCP(gw6.WithZone(""), local, cmp.Or(cfg.CallTimeout, DefaultCallTimeout), key)
	}
	return ph, nil
}

// Add opens a pinhole from anywhere to port of this host.
func (p *Pinholer) Add(ctx context.Context, proto Protocol, port uint16, lease time.Duration) (Pinhole, error) {
	num := uint16(6)
	if proto == UDP {
		num = 17
	}
	secs := uint32(lease / time.Second)
	id, err := p.fw.AddPinholeCtx(ctx, "", 0, p.Local.WithZone("").String(), port, num, secs)
	if err := soapError("AddPinhole", err); err != nil {
		if UPnPCode(err) != UPnPActionNotAuthorized || port >= 1024 {
			return Pinhole{}, err
		}
		// Routers refuse UPnP pinholes below 1024 (miniupnpd does); PCP
		// may open them (a MAP for this host's IPv6 address).
		if p.pcp == nil {
			return Pinhole{}, fmt.Errorf("%w (routers refuse IPv6 pinholes below port 1024 over UPnP, as miniupnpd does, and PCP cannot be asked here: open it in the router's IPv6 firewall settings)", err)
		}
		m, perr := p.pcp.Add(ctx, Request{Protocol: proto, ExternalPort: port, InternalAddr: p.Local, InternalPort: port, Lease: lease})
		if perr != nil {
			return Pinhole{}, fmt.Errorf("%w (routers refuse IPv6 pinholes below port 1024 over UPnP, as miniupnpd does); over PCP: %v; open it in the router's IPv6 firewall settings", err, perr)
		}
		return Pinhole{Method: MethodPCP, Protocol: proto, Addr: p.Local, Port: port, Lease: m.Lease, Created: time.Now(), ControlURL: "pcp://[" + p.pcp.gw.String() + "]"}, nil
	}
	return Pinhole{Method: MethodUPnP, ID: id, Protocol: proto, Addr: p.Local, Port: port, Lease: lease, Created: time.Now(), ControlURL: p.ControlURL}, nil
}

// Delete closes the pinhole ph.
func (p *Pinholer) Delete(ctx context.Context, ph Pinhole) error {
	if ph.Method == MethodPCP {
		if p.pcp == nil {
			return errors.New("PCP cannot be asked here, so the PCP pinhole stays until its lease runs out")
		}
		return p.pcp.Delete(ctx, ph.Protocol, ph.Port, ph.Port)
	}
	return soapError("DeletePinhole", p.fw.DeletePinholeCtx(ctx, ph.ID))
}

// FirewallStatus says whether the router's IPv6 firewall is on and lets
// pinholes be opened (FRITZ!Box says no until the user allows it per device).
func (p *Pinholer) FirewallStatus(ctx context.Context) (enabled, pinholesAllowed bool, err error) {
	enabled, pinholesAllowed, err = p.fw.GetFirewallStatusCtx(ctx)
	return enabled, pinholesAllowed, soapError("GetFirewallStatus", err)
}

// firewallControl is the control URL of the first WANIPv6FirewallControl
// service anywhere in root's device tree. It is looked for whatever the
// root's IGD version: FRITZ!OS describes an IGD v1 root with the IGD v2
// firewall service in its WANConnectionDevice.
func firewallControl(root *goupnp.RootDevice) string {
	var ctl string
	root.Device.VisitServices(func(s *goupnp.Service) {
		if strings.TrimSpace(s.ServiceType) == internetgateway2.URN_WANIPv6FirewallControl_1 && ctl == "" {
			ctl = strings.TrimSpace(s.ControlURL.Str)
		}
	})
	return ctl
}

// DefaultGateway6 is the next hop of this host's IPv6 default route (Linux:
// /proc/net/ipv6_route), with its interface as the zone when link-local.
func DefaultGateway6() (netip.Addr, error) {
	f, err := os.Open("/proc/net/ipv6_route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no IPv6 routing table here (%v): give the router's IPv6 address with --gateway6", err)
	}
	defer f.Close()
	return parseIPv6Route(f)
}

// parseIPv6Route finds the default route's next hop in /proc/net/ipv6_route.
func parseIPv6Route(r io.Reader) (netip.Addr, error) {
	sc := bufio.NewScanner(r)
	for n := 0; sc.Scan() && n < 4096; n++ {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[0] != strings.Repeat("0", 32) || fs[1] != "00" || fs[4] == strings.Repeat("0", 32) {
			continue
		}
		b, err := hex.DecodeString(fs[4])
		if err != nil || len(b) != 16 {
			continue
		}
		a := netip.AddrFrom16([16]byte(b))
		if a.IsLinkLocalUnicast() {
			a = a.WithZone(fs[9])
		}
		return a, nil
	}
	return netip.Addr{}, errors.New("no IPv6 default route: this host has no IPv6 internet access")
}

// LocalGlobal6 is this host's global IPv6 address toward gw6: the route's
// source, or, toward a link-local router, the first global address of the
// interface.
func LocalGlobal6(gw6 netip.Addr) (netip.Addr, error) {
	if gw6.Zone() == "" {
		c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw6, 9)))
		if err != nil {
			return netip.Addr{}, fmt.Errorf("no IPv6 route to the router %s: %w", gw6, err)
		}
		defer c.Close()
		a := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
		if a.IsGlobalUnicast() && !a.IsPrivate() {
			return a, nil
		}
		return netip.Addr{}, fmt.Errorf("this host's IPv6 address toward the router is %s, not a global one", a)
	}
	ifi, err := net.InterfaceByName(gw6.Zone())
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Is6() && p.Addr().IsGlobalUnicast() && !p.Addr().IsPrivate() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no global IPv6 address on %s", gw6.Zone())
}

// pinholeFile keeps the pinholes natdoctor opened, for a later remove.
const pinholeFile = "pinholes.json"

// maxPinholeFile bounds the file read.
const maxPinholeFile = 64 << 10

// SavedPinholes are the pinholes an earlier run opened and kept, by
// "proto/port@address".
func SavedPinholes() (map[string]Pinhole, error) {
	out := map[string]Pinhole{}
	b, err := os.ReadFile(filepath.Join(StateDir(), pinholeFile))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxPinholeFile {
		return nil, fmt.Errorf("%w: %s", ErrTooLarge, pinholeFile)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, pinholeFile, err)
	}
	return out, nil
}

// PinholeKey names a pinhole in SavedPinholes.
func PinholeKey(proto Protocol, port uint16, a netip.Addr) string {
	return fmt.Sprintf("%s/%d@%s", strings.ToLower(string(proto)), port, a.WithZone(""))
}

// SavePinholes writes the kept pinholes (atomically).
func SavePinholes(ps map[string]Pinhole) error {
	dir := StateDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".pinholes-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return errors.Join(werr, cerr)
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, pinholeFile))
}

// soapClient is a SOAP client of u over natdoctor's bounded HTTP client.
func soapClient(u *url.URL, hc *http.Client) *soap.SOAPClient {
	sc := soap.NewSOAPClient(*u)
	sc.HTTPClient = *hc
	return sc
}

// Packets asks the router how many packets went through the UPnP pinhole
// ph (GetPinholePackets); an error with UPnP code 704 (miniupnpd: 402)
// means the router does not have it any more.
func (p *Pinholer) Packets(ctx context.Context, ph Pinhole) (uint32, error) {
	if ph.Method != MethodUPnP {
		return 0, errors.New("PCP cannot tell")
	}
	n, err := p.fw.GetPinholePacketsCtx(ctx, ph.ID)
	return n, soapError("GetPinholePackets", err)
}

// Update renews the pinhole ph for lease.
func (p *Pinholer) Update(ctx context.Context, ph Pinhole, lease time.Duration) error {
	if ph.Method == MethodPCP {
		if p.pcp == nil {
			return errors.New("PCP cannot be asked here")
		}
		_, err := p.pcp.Add(ctx, Request{Protocol: ph.Protocol, ExternalPort: ph.Port, InternalAddr: p.Local, InternalPort: ph.Port, Lease: lease})
		return err
	}
	return soapError("UpdatePinhole", p.fw.UpdatePinholeCtx(ctx, ph.ID, uint32(lease/time.Second)))
}
