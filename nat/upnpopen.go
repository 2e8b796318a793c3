package nat

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"encoding/xml"
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
	"unicode/utf8"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// cappedTransport cuts every response body at max bytes.
type cappedTransport struct {
	base http.RoundTripper
	max  int64
}

func (t *cappedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.max}
	if isSOAP(req) {
		return mendSOAP(resp)
	}
	return resp, nil
}

const soapEnvelopeNS = "http://schemas.xmlsoap.org/soap/envelope/"

// isSOAP reports whether req is a SOAP call (goupnp writes the header as
// "SOAPACTION", not in canonical form).
func isSOAP(req *http.Request) bool {
	for k := range req.Header {
		if strings.EqualFold(k, "SOAPAction") {
			return true
		}
	}
	return false
}

// mendSOAP reads a SOAP reply (bounded by cappedBody) and mends what
// routers get wrong that would hide the answer from an XML parser: bytes
// that are not UTF-8 or not allowed in XML (TP-Link Archer C8 puts them in
// errorDescription) become U+FFFD, and an envelope without the SOAP
// namespace (DD-WRT on an Asus RT-N16) gets it. A reply that needs
// neither is passed on unchanged.
func mendSOAP(resp *http.Response) (*http.Response, error) {
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) || bytes.ContainsFunc(b, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' && r != '\r' }) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
		b = bytes.Map(func(r rune) rune {
			if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
				return '\uFFFD'
			}
			return r
		}, b)
	}
	if !bytes.Contains(b, []byte(soapEnvelopeNS)) {
		if i := bytes.Index(b, []byte("<Envelope")); i >= 0 {
			at := i + len("<Envelope")
			b = append(b[:at:at], append([]byte(` xmlns="`+soapEnvelopeNS+`"`), b[at:]...)...)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	return resp, nil
}

type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxHTTPBody)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// NewHTTPClient returns the HTTP client natdoctor uses for UPnP: no proxy,
// no redirects, keep-alive, a timeout per request and caps on headers and
// bodies (goupnp has none: a 200 MB reply would cost gigabytes).
func NewHTTPClient(timeout time.Duration) *http.Client {
	return newHTTPClient(timeout, netip.Addr{})
}

// newHTTPClient is NewHTTPClient sending from local (zero: the route's
// source).
func newHTTPClient(timeout time.Duration, local netip.Addr) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	if local.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		MaxResponseHeaderBytes: maxHTTPHeader,
		ResponseHeaderTimeout:  timeout,
		MaxIdleConnsPerHost:    upnpMaxIdlePerHost,
		IdleConnTimeout:        30 * time.Second,
		DisableCompression:     true,
	}
	return &http.Client{
		Transport:     &cappedTransport{base: tr, max: maxHTTPBody},
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ParseDeviceDescription parses a UPnP device description.
func ParseDeviceDescription(body []byte) (*goupnp.RootDevice, error) {
	root := new(goupnp.RootDevice)
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.DefaultSpace = goupnp.DeviceXMLNamespace
	if err := dec.Decode(root); err != nil {
		return nil, fmt.Errorf("%w: device description: %v", ErrMalformed, err)
	}
	return root, nil
}

// fetchDescription GETs and parses the device description at loc.
func fetchDescription(ctx context.Context, hc *http.Client, loc *url.URL) (*goupnp.RootDevice, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device description %s: %w", loc, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("device description %s: HTTP %s", loc, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("device description %s: %w", loc, err)
	}
	return ParseDeviceDescription(body)
}

// ssdpWait is how long the search may last: ssdpShare/3 of the UPnP
// bound, or, when ctx allows longer (a patient discovery), all of ctx but
// the third kept for the description and the first SOAP calls. Routers
// delay an answer by up to the request's MX (miniupnpd does), and a loaded
// machine delays it further.
func ssdpWait(ctx context.Context, upnp time.Duration) time.Duration {
	w := upnp * ssdpShare / 3
	if dl, ok := ctx.Deadline(); ok {
		w = max(w, time.Until(dl)-upnp/3)
	}
	return w
}

// openUPnP finds the IGD and opens its WAN connection service. It accepts
// only a device, and a control URL, on the gateway's address. A Location
// cached by an earlier run (Config.LocationCache) is tried first: SSDP
// waits for the router (miniupnpd answers an M-SEARCH 50 ms late at the
// least), a description fetch does not.
//
// once closes when another protocol has answered: from then on the search
// keeps only its own share of the UPnP bound, as without patience.
func openUPnP(ctx context.Context, cfg *Config, once <-chan struct{}) (*UPnP, []string, error) {
	start := time.Now()
	c, cached := readLocationCache(cfg.LocationCache, cfg.Gateway)
	if cached && cfg.TrustCachedService && c.Service != nil && time.Since(c.Service.Saved) < maxServiceAge {
		if u, err := serviceFromCache(cfg, c); err == nil {
			cfg.tracef("UPnP: %s at %s, from the cache of an earlier run (not asked: the first request checks it)", c.Service.URN, c.Service.ControlURL)
			fresh := *cfg
			fresh.TrustCachedService = false
			u.reopen = func(ctx context.Context) (*UPnP, error) {
				fresh.tracef("UPnP: the cached control URL %s failed; searching again", c.Service.ControlURL)
				u, _, err := searchAndOpen(ctx, &fresh, nil, time.Now())
				return u, err
			}
			return u, nil, nil
		}
	}
	if cached {
		cctx, cancel := context.WithTimeout(ctx, cfg.UPnPTimeout/3)
		ccfg := *cfg
		ccfg.standby = c.Host
		u, err := openLocation(cctx, &ccfg, c, start)
		cancel()
		if err == nil {
			cfg.tracef("UPnP: the cached Location %s answered (%v)", c.Location, time.Since(start).Round(time.Millisecond))
			c.Service = u.cacheEntry()
			writeLocationCache(cfg.LocationCache, c)
			return u, nil, nil
		}
		cfg.tracef("UPnP: the cached Location %s failed (%v); searching", c.Location, err)
	}
	return searchAndOpen(ctx, cfg, once, start)
}

// searchAndOpen finds the IGD with SSDP, opens it, and caches where it is.
func searchAndOpen(ctx context.Context, cfg *Config, once <-chan struct{}, start time.Time) (*UPnP, []string, error) {
	share := cfg.UPnPTimeout * ssdpShare / 3
	sctx, cancel := context.WithTimeout(ctx, ssdpWait(ctx, cfg.UPnPTimeout))
	go func() {
		select {
		case <-once:
			t := time.NewTimer(share)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-sctx.Done():
			}
		case <-sctx.Done():
		}
	}()
	found, ignored, err := searchIGD(sctx, cfg.Gateway, cfg.Local, cfg.SSDPPort, cfg.SSDPMulticast)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.Canceled) {
			err = fmt.Errorf("SSDP: %w (no Internet Gateway Device answered from %s)", ErrNoResponse, cfg.Gateway)
		}
		return nil, ignored, err
	}
	cfg.tracef("SSDP: %s answered, Location %s, ST %s (%v)", found.From, found.Location, found.ST, time.Since(start).Round(time.Millisecond))
	c := locationCache{Gateway: cfg.Gateway, Location: found.Location.String(), Server: found.Server}
	ocfg := *cfg
	if a := found.From.Addr(); a != cfg.Gateway {
		c.Host, ocfg.standby = a, a
	}
	u, err := openLocation(ctx, &ocfg, c, start)
	if err != nil {
		return nil, ignored, err
	}
	if c.Host.IsValid() {
		u.Device.Workarounds = append(u.Device.Workarounds, fmt.Sprintf("the UPnP IGD answers from %s, not from the gateway %s, and no IGD answered from the gateway: "+
			"natdoctor uses it, as a CARP or VRRP pair (pfSense, OPNsense) answers from its own address; if %s is another device "+
			"(an access point, a second router), its mappings do nothing for connections from the internet", c.Host, cfg.Gateway, c.Host))
	}
	c.Service = u.cacheEntry()
	writeLocationCache(cfg.LocationCache, c)
	return u, ignored, nil
}

// maxServiceAge is how long a cached service is used without asking the
// router for its description (Config.TrustCachedService).
const maxServiceAge = 24 * time.Hour

// cachedService is the WAN connection service an earlier run opened.
type cachedService struct {
	URN        string     `json:"urn"`
	ControlURL string     `json:"control_url"`
	Device     DeviceInfo `json:"device"`
	Saved      time.Time  `json:"saved"`
}

// cacheEntry is what the next run needs to use u without its description.
func (u *UPnP) cacheEntry() *cachedService {
	return &cachedService{URN: u.Device.ServiceType, ControlURL: u.Device.ControlURL, Device: u.Device, Saved: time.Now()}
}

// serviceFromCache makes a client of the cached service, asking nothing.
func serviceFromCache(cfg *Config, c locationCache) (*UPnP, error) {
	s := c.Service
	ctl, err := url.Parse(s.ControlURL)
	if err != nil || ctl.Scheme != "http" {
		return nil, fmt.Errorf("%w: cached control URL %q", ErrMalformed, s.ControlURL)
	}
	if h, ok := locationHost(ctl); !ok || h != cmp.Or(c.Host, cfg.Gateway) {
		return nil, fmt.Errorf("cached control URL %s is not on the gateway %s", ctl, cfg.Gateway)
	}
	sc := soap.NewSOAPClient(*ctl)
	sc.HTTPClient = *cfg.HTTPClient
	client := goupnp.ServiceClient{SOAPClient: sc}
	var conn wanConnection
	switch s.URN {
	case internetgateway2.URN_WANIPConnection_2:
		conn = &internetgateway2.WANIPConnection2{ServiceClient: client}
	case internetgateway2.URN_WANIPConnection_1:
		conn = &internetgateway2.WANIPConnection1{ServiceClient: client}
	case internetgateway2.URN_WANPPPConnection_1:
		conn = &internetgateway2.WANPPPConnection1{ServiceClient: client}
	default:
		if !namedServiceRE.MatchString(s.URN) {
			return nil, fmt.Errorf("cached service %q is none natdoctor speaks", s.URN)
		}
		conn = &namedConnection{sc: sc, urn: s.URN}
	}
	dev := s.Device
	dev.Location, dev.Server = c.Location, c.Server
	return &UPnP{conn: conn, local: cfg.Local, calls: cfg.CountRequest, listPage: cfg.ListPage, Device: dev}, nil
}

// openLocation reads the device description at c.Location and opens the
// WAN connection service it names.
func openLocation(ctx context.Context, cfg *Config, c locationCache, start time.Time) (*UPnP, error) {
	loc, err := url.Parse(c.Location)
	if err != nil || loc.Scheme != "http" {
		return nil, fmt.Errorf("%w: Location %q", ErrMalformed, c.Location)
	}
	if h, ok := locationHost(loc); !ok || h != cfg.upnpHost() {
		return nil, fmt.Errorf("Location %s points away from the gateway %s", loc, cfg.Gateway)
	}
	root, err := fetchDescription(ctx, cfg.HTTPClient, loc)
	if err != nil {
		return nil, err
	}
	cfg.tracef("UPnP: device description read (%v)", time.Since(start).Round(time.Millisecond))
	base := loc
	if root.URLBaseStr != "" {
		if b, err := url.Parse(root.URLBaseStr); err == nil {
			base = b
		}
	}
	root.SetURLBase(base)
	u, err := pickService(ctx, root, loc, cfg)
	if err != nil {
		return nil, err
	}
	u.Device.Location = loc.String()
	u.Device.Server = c.Server
	return u, nil
}

// locationCache is the IGD an earlier run found behind a gateway.
type locationCache struct {
	Gateway  netip.Addr `json:"gateway"`
	Location string     `json:"location"`
	Server   string     `json:"server,omitempty"`
	// Host is where the IGD answers when that is not the gateway (a CARP
	// pair's own address).
	Host netip.Addr `json:"host,omitzero"`
	// Service is the service opened there, for TrustCachedService.
	Service *cachedService `json:"service,omitempty"`
}

// maxLocationCache bounds the cache file read.
const maxLocationCache = 8 << 10

func readLocationCache(path string, gw netip.Addr) (locationCache, bool) {
	var c locationCache
	if path == "" {
		return c, false
	}
	f, err := os.Open(path)
	if err != nil {
		return c, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLocationCache))
	if err != nil || json.Unmarshal(b, &c) != nil || c.Gateway != gw || c.Location == "" {
		return c, false
	}
	return c, true
}

// writeLocationCache keeps c for the next run; a failure only costs the
// next run a search.
func writeLocationCache(path string, c locationCache) {
	if path == "" {
		return
	}
	b, err := json.Marshal(c)
	if err != nil || os.MkdirAll(filepath.Dir(path), 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".upnp-location-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), path) != nil {
		os.Remove(tmp.Name())
	}
}

// workarounds names what natdoctor does about a description's departures
// from the spec, for discover to say.
func workarounds(root *goupnp.RootDevice, urn string) []string {
	var w []string
	switch {
	case strings.HasPrefix(urn, "urn:dslforum-org:"):
		w = append(w, "the device describes its IGD in the Broadband Forum's namespace ("+urn+"): natdoctor speaks IGD v1's actions in it")
	case namedServiceRE.MatchString(urn) && strings.Contains(urn, "WANPPPConnection:") && !strings.HasSuffix(urn, ":1"):
		w = append(w, "the device describes "+urn+", a service the UPnP spec does not define: natdoctor speaks IGD v1's actions in its namespace")
	}
	if strings.HasSuffix(root.Device.DeviceType, ":2") && strings.HasSuffix(urn, ":1") {
		w = append(w, "an IGD v2 device with a version 1 connection service: no bulk listing, port by port")
	}
	return w
}

// pickService tries WANIPConnection:2, WANIPConnection:1 and
// WANPPPConnection:1, in that order, then the WAN connection services
// outside the spec (namedServiceRE), and returns the first on the gateway.
func pickService(ctx context.Context, root *goupnp.RootDevice, loc *url.URL, cfg *Config) (*UPnP, error) {
	type candidate struct {
		urn  string
		conn wanConnection
		sc   *goupnp.ServiceClient
	}
	var cands []candidate
	if cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc); err == nil {
		for _, c := range cs {
			cands = append(cands, candidate{internetgateway2.URN_WANIPConnection_2, c, &c.ServiceClient})
		}
	}
	if cs, err := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc); err == nil {
		for _, c := range cs {
			cands = append(cands, candidate{internetgateway2.URN_WANIPConnection_1, c, &c.ServiceClient})
		}
	}
	if cs, err := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc); err == nil {
		for _, c := range cs {
			cands = append(cands, candidate{internetgateway2.URN_WANPPPConnection_1, c, &c.ServiceClient})
		}
	}
	if len(cands) == 0 {
		// Services outside the spec's three: WANPPPConnection:2, or the
		// Broadband Forum's namespace. They take IGD v1's actions.
		root.Device.VisitServices(func(srv *goupnp.Service) {
			if namedServiceRE.MatchString(srv.ServiceType) {
				sc := srv.NewSOAPClient()
				cands = append(cands, candidate{srv.ServiceType, &namedConnection{sc: sc, urn: srv.ServiceType},
					&goupnp.ServiceClient{SOAPClient: sc, RootDevice: root, Location: loc, Service: srv}})
			}
		})
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("UPnP: the device at %s offers no WANIPConnection or WANPPPConnection service", loc)
	}
	var why []string
	var usable []candidate
	for _, c := range cands {
		ctl := c.sc.SOAPClient.EndpointURL
		if h, ok := locationHost(&ctl); !ok || h != cfg.upnpHost() {
			why = append(why, fmt.Sprintf("%s control URL %s is not on the gateway", c.urn, ctl.String()))
			continue
		}
		c.sc.SOAPClient.HTTPClient = *cfg.HTTPClient
		usable = append(usable, c)
	}
	if len(usable) == 0 {
		return nil, fmt.Errorf("UPnP: no usable service: %s", strings.Join(why, "; "))
	}
	best, note := usable[0], ""
	if len(usable) > 1 {
		best, note = connectedService(ctx, cfg, usable, func(c candidate) wanConnection { return c.conn })
	}
	igd := 1
	if strings.HasSuffix(root.Device.DeviceType, ":2") {
		igd = 2
	}
	ctl := best.sc.SOAPClient.EndpointURL
	w := workarounds(root, best.urn)
	if note != "" {
		w = append(w, note)
	}
	return &UPnP{
		conn:     best.conn,
		local:    cfg.Local,
		calls:    cfg.CountRequest,
		listPage: cfg.ListPage,
		Device: DeviceInfo{
			FriendlyName: root.Device.FriendlyName, Manufacturer: root.Device.Manufacturer,
			ModelName: root.Device.ModelName, ModelNumber: root.Device.ModelNumber,
			IGDVersion: igd, ServiceType: best.urn, ControlURL: ctl.String(),
			Workarounds: w,
		},
	}, nil
}

// maxServiceProbes bounds how many WAN connection services of one device
// are asked whether they are connected.
const maxServiceProbes = 4

// connectedService picks, among several WAN connection services (two WAN
// devices on a MikroTik; WANIPConnection and WANPPPConnection both
// described where only one carries the line), the one that is connected
// with a public external address, else a connected one, else the first.
// Two requests per service, only on devices that describe more than one.
func connectedService[C any](ctx context.Context, cfg *Config, cands []C, conn func(C) wanConnection) (C, string) {
	type probe struct {
		connected, public bool
		ext               string
	}
	n := min(len(cands), maxServiceProbes)
	probes := make([]probe, n)
	for i := range n {
		c := conn(cands[i])
		pctx, cancel := context.WithTimeout(ctx, cmp.Or(cfg.CallTimeout, DefaultCallTimeout))
		if cfg.CountRequest != nil {
			cfg.CountRequest()
			cfg.CountRequest()
		}
		status, _, _, err := c.GetStatusInfoCtx(pctx)
		probes[i].connected = err == nil && (status == "Connected" || status == "Up")
		if ext, err := c.GetExternalIPAddressCtx(pctx); err == nil {
			probes[i].ext = strings.TrimSpace(ext)
			a, perr := netip.ParseAddr(probes[i].ext)
			probes[i].public = perr == nil && ClassifyAddr(a) == AddrPublic
		}
		cancel()
	}
	pick := -1
	for i, p := range probes {
		if p.connected && p.public {
			pick = i
			break
		}
	}
	for i, p := range probes {
		if pick < 0 && p.connected {
			pick = i
		}
	}
	if pick <= 0 {
		return cands[0], ""
	}
	return cands[pick], fmt.Sprintf("the device describes %d WAN connection services and the first is not connected: natdoctor uses number %d (connected, external address %s)",
		len(cands), pick+1, cmp.Or(probes[pick].ext, "unknown"))
}
