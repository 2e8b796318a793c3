package nat

import (
	"bytes"
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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// Bounds on what a UPnP device may send.
const (
	maxHTTPBody    = 1 << 20 // a device description or SOAP reply
	maxHTTPHeader  = 16 << 10
	maxListEntries = 10000 // mappings natdoctor will read from one router
	// maxListPage and minListPage bound the entries asked for per
	// GetListOfPortMappings call. miniupnpd's cost is per call, not per
	// entry (lab: 0.2-0.5 s for 25 or 200 of 100 entries), so pages start
	// large and halve when a router fails a page with an HTTP error. A
	// page of minListPage or more is never taken as the end of a range.
	maxListPage        = 100
	minListPage        = 25
	maxListCalls       = 4096 // GetListOfPortMappings calls in one listing
	maxGenericIndex    = 2048 // GetGenericPortMappingEntry calls, at most
	upnpMaxIdlePerHost = 8
)

// UPnP error codes (UPnP IGD WANIPConnection v2, section 2.4).
var upnpErrorNames = map[int]string{
	401: "InvalidAction",
	402: "InvalidArgs",
	501: "ActionFailed",
	606: "ActionNotAuthorized",
	713: "SpecifiedArrayIndexInvalid",
	714: "NoSuchEntryInArray",
	715: "WildCardNotPermittedInSrcIP",
	716: "WildCardNotPermittedInExtPort",
	718: "ConflictInMappingEntry",
	724: "SamePortValuesRequired",
	725: "OnlyPermanentLeasesSupported",
	726: "RemoteHostOnlySupportsWildcard",
	727: "ExternalPortOnlySupportsWildcard",
	728: "NoPortMapsAvailable",
	729: "ConflictWithOtherMechanisms",
	730: "PortMappingNotFound",
	731: "ReadOnly",
	732: "WildCardNotPermittedInIntPort",
	733: "InconsistentParameters",
}

// Named UPnP error codes natdoctor acts on.
const (
	UPnPInvalidArgs                  = 402
	UPnPActionNotAuthorized          = 606
	UPnPSpecifiedArrayIndexInvalid   = 713
	UPnPNoSuchEntryInArray           = 714
	UPnPConflictInMappingEntry       = 718
	UPnPSamePortValuesRequired       = 724
	UPnPOnlyPermanentLeasesSupported = 725
	UPnPConflictWithOtherMechanisms  = 729
	UPnPPortMappingNotFound          = 730
)

// UPnPError is a SOAP fault from the router, with its UPnP error code.
type UPnPError struct {
	Code        int
	Description string
	Action      string
}

// Name returns the code's name in the IGD specification.
func (e *UPnPError) Name() string {
	if n, ok := upnpErrorNames[e.Code]; ok {
		return n
	}
	return "UPnPError" + strconv.Itoa(e.Code)
}

func (e *UPnPError) Error() string {
	msg := fmt.Sprintf("UPnP %s: error %d %s", e.Action, e.Code, e.Name())
	if e.Description != "" && e.Description != e.Name() {
		msg += ": " + e.Description
	}
	switch e.Code {
	case UPnPActionNotAuthorized:
		msg += " (the router refuses this by policy: ports below 1024, or a mapping for another address in secure mode)"
	case UPnPConflictInMappingEntry:
		msg += " (the port is already mapped to another host)"
	case UPnPConflictWithOtherMechanisms:
		msg += " (the port is used by a static forward or the router's own services)"
	}
	return msg
}

// UPnPCode returns the UPnP error code carried by err, or 0.
func UPnPCode(err error) int {
	var ue *UPnPError
	if errors.As(err, &ue) {
		return ue.Code
	}
	return 0
}

// soapError converts goupnp's errors into typed ones.
func soapError(action string, err error) error {
	if err == nil {
		return nil
	}
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) {
		return &UPnPError{Code: fault.Detail.UPnPError.Errorcode, Description: fault.Detail.UPnPError.ErrorDescription, Action: action}
	}
	if strings.Contains(err.Error(), ErrTooLarge.Error()) {
		return fmt.Errorf("UPnP %s: %w", action, ErrTooLarge)
	}
	// goupnp flattens the HTTP error (%v), and net/http says "context
	// deadline exceeded" rather than "Client.Timeout" when its own timer
	// loses the race with the request's deadline: match the text too.
	if msg := strings.ToLower(err.Error()); errors.Is(err, context.DeadlineExceeded) || isTimeout(err) ||
		strings.Contains(msg, "timeout") || strings.Contains(msg, context.DeadlineExceeded.Error()) {
		return fmt.Errorf("UPnP %s: %w: %v", action, ErrNoResponse, err)
	}
	return fmt.Errorf("UPnP %s: %w", action, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

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
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: timeout}).DialContext,
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

// DeviceInfo describes the router's UPnP device, for advice.
type DeviceInfo struct {
	Location     string `json:"location"`
	Server       string `json:"server,omitempty"`
	FriendlyName string `json:"friendly_name"`
	Manufacturer string `json:"manufacturer"`
	ModelName    string `json:"model_name"`
	ModelNumber  string `json:"model_number,omitempty"`
	IGDVersion   int    `json:"igd_version"`
	ServiceType  string `json:"service_type"`
	ControlURL   string `json:"control_url"`
}

// wanConnection is what the three WAN connection services share.
type wanConnection interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
	GetGenericPortMappingEntryCtx(ctx context.Context, index uint16) (remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32, err error)
	GetSpecificPortMappingEntryCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) (internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32, err error)
	GetStatusInfoCtx(ctx context.Context) (status string, lastError string, uptime uint32, err error)
}

// bulkLister is IGD v2's GetListOfPortMappings.
type bulkLister interface {
	GetListOfPortMappingsCtx(ctx context.Context, startPort, endPort uint16, protocol string, manage bool, number uint16) (string, error)
}

// soapRangeDeleter is IGD v2's DeletePortMappingRange.
type soapRangeDeleter interface {
	DeletePortMappingRangeCtx(ctx context.Context, startPort, endPort uint16, protocol string, manage bool) error
}

// UPnP is a client of the router's UPnP IGD WAN connection service.
type UPnP struct {
	conn   wanConnection
	local  netip.Addr // this host, as the router sees it
	Device DeviceInfo
	// calls, when set, is called once per SOAP request sent.
	calls func()
	// listPage is Config.ListPage.
	listPage int
}

// Method returns MethodUPnP.
func (u *UPnP) Method() Method { return MethodUPnP }

func (u *UPnP) count() {
	if u.calls != nil {
		u.calls()
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
	if c, ok := readLocationCache(cfg.LocationCache, cfg.Gateway); ok {
		cctx, cancel := context.WithTimeout(ctx, cfg.UPnPTimeout/3)
		u, err := openLocation(cctx, cfg, c, start)
		cancel()
		if err == nil {
			cfg.tracef("UPnP: the cached Location %s answered (%v)", c.Location, time.Since(start).Round(time.Millisecond))
			return u, nil, nil
		}
		cfg.tracef("UPnP: the cached Location %s failed (%v); searching", c.Location, err)
	}
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
	u, err := openLocation(ctx, cfg, c, start)
	if err != nil {
		return nil, ignored, err
	}
	writeLocationCache(cfg.LocationCache, c)
	return u, ignored, nil
}

// openLocation reads the device description at c.Location and opens the
// WAN connection service it names.
func openLocation(ctx context.Context, cfg *Config, c locationCache, start time.Time) (*UPnP, error) {
	loc, err := url.Parse(c.Location)
	if err != nil || loc.Scheme != "http" {
		return nil, fmt.Errorf("%w: Location %q", ErrMalformed, c.Location)
	}
	if h, ok := locationHost(loc); !ok || h != cfg.Gateway {
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
	u, err := pickService(root, loc, cfg)
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
}

// maxLocationCache bounds the cache file read.
const maxLocationCache = 4 << 10

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

// pickService tries WANIPConnection:2, WANIPConnection:1 and
// WANPPPConnection:1, in that order, and returns the first on the gateway.
func pickService(root *goupnp.RootDevice, loc *url.URL, cfg *Config) (*UPnP, error) {
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
		return nil, fmt.Errorf("UPnP: the device at %s offers no WANIPConnection or WANPPPConnection service", loc)
	}
	var why []string
	for _, c := range cands {
		ctl := c.sc.SOAPClient.EndpointURL
		if h, ok := locationHost(&ctl); !ok || h != cfg.Gateway {
			why = append(why, fmt.Sprintf("%s control URL %s is not on the gateway", c.urn, ctl.String()))
			continue
		}
		c.sc.SOAPClient.HTTPClient = *cfg.HTTPClient
		igd := 1
		if strings.HasSuffix(root.Device.DeviceType, ":2") {
			igd = 2
		}
		return &UPnP{
			conn:     c.conn,
			local:    cfg.Local,
			calls:    cfg.CountRequest,
			listPage: cfg.ListPage,
			Device: DeviceInfo{
				FriendlyName: root.Device.FriendlyName, Manufacturer: root.Device.Manufacturer,
				ModelName: root.Device.ModelName, ModelNumber: root.Device.ModelNumber,
				IGDVersion: igd, ServiceType: c.urn, ControlURL: ctl.String(),
			},
		}, nil
	}
	return nil, fmt.Errorf("UPnP: no usable service: %s", strings.Join(why, "; "))
}

// ExternalAddr returns the router's external address.
func (u *UPnP) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	u.count()
	s, err := u.conn.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.Addr{}, soapError("GetExternalIPAddress", err)
	}
	s = strings.TrimSpace(s)
	if s == "" || s == "0.0.0.0" {
		return netip.Addr{}, fmt.Errorf("UPnP GetExternalIPAddress: %w (it answered %q)", ErrNoExternalAddr, s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: external address %q", ErrMalformed, s)
	}
	return a.Unmap(), nil
}

// Status returns the WAN connection status and uptime.
func (u *UPnP) Status(ctx context.Context) (status string, uptime time.Duration, err error) {
	u.count()
	s, _, up, err := u.conn.GetStatusInfoCtx(ctx)
	if err != nil {
		return "", 0, soapError("GetStatusInfo", err)
	}
	return s, time.Duration(up) * time.Second, nil
}

// Add creates or renews a mapping. Lease negotiation: a router that only
// takes permanent leases (725) gets 0; one that refuses a permanent lease
// (402 or 501 on 0) gets DefaultPMPLease. The returned mapping holds the
// lease that was granted.
func (u *UPnP) Add(ctx context.Context, req Request) (Mapping, error) {
	lease := uint32(req.Lease / time.Second)
	add := func(lease uint32) error {
		u.count()
		return soapError("AddPortMapping", u.conn.AddPortMappingCtx(ctx, "", req.ExternalPort, string(req.Protocol),
			req.InternalPort, req.InternalAddr.String(), !req.Disabled, req.Description, lease))
	}
	err := add(lease)
	switch code := UPnPCode(err); {
	case code == UPnPOnlyPermanentLeasesSupported && lease != 0:
		lease = 0
		err = add(lease)
	case (code == UPnPInvalidArgs || code == 501) && lease == 0:
		lease = uint32(DefaultPMPLease / time.Second)
		err = add(lease)
	}
	if c := UPnPCode(err); (c == UPnPConflictInMappingEntry || c == UPnPActionNotAuthorized) && u.local.IsValid() && req.InternalAddr != u.local {
		// miniupnpd and others answer 718 or 606 in "secure mode", which
		// lets a host map ports only to itself.
		return Mapping{}, fmt.Errorf("%w; the router may only let a host map ports to itself (\"secure mode\"): run natdoctor on %s, or allow mappings for other hosts in the router", err, req.InternalAddr)
	}
	if err != nil {
		return Mapping{}, err
	}
	return Mapping{
		Protocol: req.Protocol, ExternalPort: req.ExternalPort, InternalAddr: req.InternalAddr,
		InternalPort: req.InternalPort, Description: req.Description, Lease: time.Duration(lease) * time.Second,
		Enabled: true, Method: MethodUPnP,
	}, nil
}

// Delete removes the mapping of proto/externalPort. A mapping that is not
// there yields an error wrapping ErrNoSuchMapping.
func (u *UPnP) Delete(ctx context.Context, proto Protocol, externalPort, internalPort uint16) error {
	u.count()
	err := soapError("DeletePortMapping", u.conn.DeletePortMappingCtx(ctx, "", externalPort, string(proto)))
	if c := UPnPCode(err); c == UPnPNoSuchEntryInArray || c == UPnPPortMappingNotFound {
		return fmt.Errorf("%w: %s %d: %v", ErrNoSuchMapping, proto, externalPort, err)
	}
	return err
}

// DeleteRange removes every mapping of proto from lo to hi in one request
// (IGD v2's DeletePortMappingRange). miniupnpd removes them whoever owns
// them, whatever NewManage says: the caller must know that every port in
// the range is its own to remove. On IGD v1 it returns ErrUnsupported.
func (u *UPnP) DeleteRange(ctx context.Context, proto Protocol, lo, hi uint16) error {
	rd, ok := u.conn.(soapRangeDeleter)
	if !ok {
		return fmt.Errorf("UPnP DeletePortMappingRange: %w", ErrUnsupported)
	}
	u.count()
	return soapError("DeletePortMappingRange", rd.DeletePortMappingRangeCtx(ctx, lo, hi, string(proto), false))
}

// Get returns the mapping of proto/externalPort or an error wrapping
// ErrNoSuchMapping.
func (u *UPnP) Get(ctx context.Context, proto Protocol, externalPort uint16) (Mapping, error) {
	u.count()
	ip, client, enabled, desc, lease, err := u.conn.GetSpecificPortMappingEntryCtx(ctx, "", externalPort, string(proto))
	if err != nil {
		err = soapError("GetSpecificPortMappingEntry", err)
		if c := UPnPCode(err); c == UPnPNoSuchEntryInArray || c == UPnPPortMappingNotFound {
			return Mapping{}, fmt.Errorf("%w: %s %d", ErrNoSuchMapping, proto, externalPort)
		}
		return Mapping{}, err
	}
	addr, _ := netip.ParseAddr(strings.TrimSpace(client))
	return Mapping{
		Protocol: proto, ExternalPort: externalPort, InternalAddr: addr.Unmap(), InternalPort: ip,
		Description: desc, Lease: time.Duration(lease) * time.Second, Enabled: enabled, Method: MethodUPnP,
	}, nil
}

// List returns every mapping, with IGD v2's GetListOfPortMappings in pages
// by port range, falling back to GetGenericPortMappingEntry when the bulk
// call is missing or fails.
func (u *UPnP) List(ctx context.Context) ([]Mapping, error) {
	if bl, ok := u.conn.(bulkLister); ok {
		ms, err := u.listBulk(ctx, bl)
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrNoResponse) {
			return ms, err
		}
	}
	return u.listGeneric(ctx)
}

// listBulk lists with GetListOfPortMappings. Routers return a page's
// entries in any order (miniupnpd: newest first), so a full page does not
// say where the next one starts: a full page splits its port range in two
// and each half is listed again, until every range comes back short.
func (u *UPnP) listBulk(ctx context.Context, bl bulkLister) ([]Mapping, error) {
	return u.listBulkRanges(ctx, bl, []portSpan{{TCP, 1, 65535}, {UDP, 1, 65535}})
}

// portSpan is a run of ports of one protocol, lo to hi inclusive.
type portSpan struct {
	proto  Protocol
	lo, hi uint16
}

// spans groups ports into runs of consecutive ports.
func spans(proto Protocol, ports []uint16) []portSpan {
	ps := slices.Clone(ports)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	var out []portSpan
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].hi+1 == p {
			out[n-1].hi = p
			continue
		}
		out = append(out, portSpan{proto, p, p})
	}
	return out
}

// BulkLookup reports whether Lookup can use IGD v2's bulk listing (one
// request for the ports of a server, usually).
func (u *UPnP) BulkLookup() bool {
	_, ok := u.conn.(bulkLister)
	return ok
}

// Lookup returns the mappings of exactly these ports: on IGD v2 with
// GetListOfPortMappings (lookupBulk: usually one request), else, or when
// the bulk call fails, one GetSpecificPortMappingEntry per port. Ports that are not mapped are
// simply absent.
func (u *UPnP) Lookup(ctx context.Context, proto Protocol, ports []uint16) ([]Mapping, error) {
	if bl, ok := u.conn.(bulkLister); ok {
		ms, err := u.lookupBulk(ctx, bl, proto, ports)
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrNoResponse) {
			return ms, err
		}
	}
	var ms []Mapping
	for _, p := range ports {
		m, err := u.Get(ctx, proto, p)
		switch {
		case errors.Is(err, ErrNoSuchMapping):
		case err != nil:
			return nil, fmt.Errorf("looking up %s %d: %w", proto, p, err)
		default:
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// lookupBulk looks ports up with GetListOfPortMappings. Several runs (21
// and 42000-42010) are first asked for in one page over all of them: on a
// home router's sparse table that page is short, so complete, and one
// request does; a full page falls back to one walk per run.
func (u *UPnP) lookupBulk(ctx context.Context, bl bulkLister, proto Protocol, ports []uint16) ([]Mapping, error) {
	sp := spans(proto, ports)
	if len(sp) == 0 {
		return nil, nil
	}
	if len(sp) > 1 {
		all := portSpan{proto, sp[0].lo, sp[len(sp)-1].hi}
		u.count()
		listing, err := bl.GetListOfPortMappingsCtx(ctx, all.lo, all.hi, string(proto), true, maxListPage)
		err = soapError("GetListOfPortMappings", err)
		switch c := UPnPCode(err); {
		case c == UPnPPortMappingNotFound || c == UPnPNoSuchEntryInArray:
			return nil, nil
		case err != nil:
			return nil, err
		}
		ms, err := ParsePortMappingList([]byte(listing))
		if err != nil {
			return nil, err
		}
		if len(ms) < minListPage {
			return keepPorts(ms, proto, ports), nil
		}
	}
	ms, err := u.listBulkRanges(ctx, bl, sp)
	return keepPorts(ms, proto, ports), err
}

// keepPorts returns the mappings of proto on one of ports.
func keepPorts(ms []Mapping, proto Protocol, ports []uint16) []Mapping {
	return slices.DeleteFunc(ms, func(m Mapping) bool { return m.Protocol != proto || !slices.Contains(ports, m.ExternalPort) })
}

// listBulkRanges lists the mappings in each span with GetListOfPortMappings.
func (u *UPnP) listBulkRanges(ctx context.Context, bl bulkLister, want []portSpan) ([]Mapping, error) {
	var all []Mapping
	seen := map[Key]bool{}
	calls, page := 0, maxListPage
	if u.listPage > 0 {
		page = min(u.listPage, maxListEntries)
	}
	// known says whether every port in [lo, hi] is already listed.
	known := func(proto Protocol, lo, hi uint16) bool {
		if int(hi-lo)+1 > len(all) {
			return false
		}
		for p := int(lo); p <= int(hi); p++ {
			if !seen[Key{proto, uint16(p)}] {
				return false
			}
		}
		return true
	}
	var walk func(proto Protocol, lo, hi uint16) error
	walk = func(proto Protocol, lo, hi uint16) error {
		if calls++; calls > maxListCalls {
			return fmt.Errorf("UPnP GetListOfPortMappings: %w: more than %d calls", ErrTooLarge, maxListCalls)
		}
		u.count()
		listing, err := bl.GetListOfPortMappingsCtx(ctx, lo, hi, string(proto), true, uint16(page))
		if err != nil {
			err = soapError("GetListOfPortMappings", err)
			c := UPnPCode(err)
			if c == UPnPPortMappingNotFound || c == UPnPNoSuchEntryInArray {
				return nil // nothing in this range
			}
			if c == 0 && page > minListPage && ctx.Err() == nil && !errors.Is(err, ErrNoResponse) && !errors.Is(err, ErrTooLarge) {
				page /= 2 // an HTTP error, not a SOAP fault: try smaller pages
				return walk(proto, lo, hi)
			}
			return err
		}
		ms, err := ParsePortMappingList([]byte(listing))
		if err != nil {
			return err
		}
		var got []uint16
		for _, m := range ms {
			k := Key{m.Protocol, m.ExternalPort}
			if m.Protocol != proto || m.ExternalPort < lo || m.ExternalPort > hi {
				continue // not what was asked
			}
			got = append(got, m.ExternalPort)
			if !seen[k] {
				seen[k] = true
				all = append(all, m)
			}
		}
		if len(all) > maxListEntries {
			return fmt.Errorf("UPnP GetListOfPortMappings: %w: more than %d mappings", ErrTooLarge, maxListEntries)
		}
		// A page shorter than asked is the whole range, unless it still
		// holds minListPage entries: a router may cap pages below what
		// was asked, and then the rest would go unseen.
		if len(ms) < min(page, minListPage) || lo == hi {
			return nil
		}
		if len(got) < len(ms) {
			// A full page with ports outside the range asked for: the
			// router ignores the range, so splitting it would never end.
			return fmt.Errorf("UPnP GetListOfPortMappings: %w: a full page of ports outside %d-%d", ErrMalformed, lo, hi)
		}
		slices.Sort(got)
		first, last := got[0], got[len(got)-1]
		if known(proto, first, last) {
			// A dense page (a mapped range, newest or oldest first): every
			// port between its ends is known, so only the sides remain.
			if first > lo {
				if err := walk(proto, lo, first-1); err != nil {
					return err
				}
			}
			if last < hi {
				return walk(proto, last+1, hi)
			}
			return nil
		}
		// Split where the entries are: at the median port of this page
		// (ports cluster: 21 and a passive range), kept inside [lo, hi-1].
		mid := min(max(got[len(got)/2], lo), hi-1)
		if err := walk(proto, lo, mid); err != nil {
			return err
		}
		return walk(proto, mid+1, hi)
	}
	for _, sp := range want {
		if err := walk(sp.proto, sp.lo, sp.hi); err != nil {
			return nil, err
		}
	}
	return all, nil
}

func (u *UPnP) listGeneric(ctx context.Context) ([]Mapping, error) {
	var all []Mapping
	seen := map[string]bool{}
	bad, repeats := 0, 0
	for i := 0; i < maxGenericIndex; i++ {
		u.count()
		rh, ep, proto, ip, client, enabled, desc, lease, err := u.conn.GetGenericPortMappingEntryCtx(ctx, uint16(i))
		if err != nil {
			err = soapError("GetGenericPortMappingEntry", err)
			if c := UPnPCode(err); c == UPnPSpecifiedArrayIndexInvalid || c == UPnPNoSuchEntryInArray {
				return all, nil
			}
			return all, err
		}
		p, perr := ParseProtocol(proto)
		if perr != nil {
			if bad++; bad >= 16 {
				return all, fmt.Errorf("UPnP GetGenericPortMappingEntry: %w: %d entries without a protocol", ErrMalformed, bad)
			}
			continue
		}
		// A router that ignores the index answers the same entry each
		// time; one whose table changes mid-walk repeats a few.
		k := fmt.Sprint(p, ep, rh)
		if seen[k] {
			if repeats++; repeats >= 16 {
				return all, fmt.Errorf("UPnP GetGenericPortMappingEntry: %w: %d entries repeated", ErrMalformed, repeats)
			}
			continue
		}
		seen[k] = true
		addr, _ := netip.ParseAddr(strings.TrimSpace(client))
		all = append(all, Mapping{Protocol: p, ExternalPort: ep, InternalAddr: addr.Unmap(), InternalPort: ip,
			Description: desc, Lease: time.Duration(lease) * time.Second, Enabled: enabled, RemoteHost: rh, Method: MethodUPnP})
	}
	return all, fmt.Errorf("UPnP GetGenericPortMappingEntry: %w: more than %d entries", ErrTooLarge, maxGenericIndex)
}

// ParsePortMappingList parses IGD v2's PortMappingList XML document.
func ParsePortMappingList(doc []byte) ([]Mapping, error) {
	if len(doc) > maxHTTPBody {
		return nil, fmt.Errorf("%w: port mapping list of %d bytes", ErrTooLarge, len(doc))
	}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var (
		out   []Mapping
		cur   map[string]string
		field string
		depth int
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: port mapping list: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > 16 {
				return nil, fmt.Errorf("%w: port mapping list nested too deep", ErrMalformed)
			}
			switch {
			case t.Name.Local == "PortMappingEntry":
				cur = map[string]string{}
			case cur != nil:
				field = t.Name.Local
			}
		case xml.CharData:
			if cur != nil && field != "" && len(cur[field]) < 1024 {
				cur[field] += string(t)
			}
		case xml.EndElement:
			depth--
			if t.Name.Local == "PortMappingEntry" && cur != nil {
				if m, ok := entryToMapping(cur); ok {
					out = append(out, m)
					if len(out) > maxListEntries {
						return nil, fmt.Errorf("%w: more than %d entries", ErrTooLarge, maxListEntries)
					}
				}
				cur = nil
			}
			field = ""
		}
	}
	return out, nil
}

func entryToMapping(f map[string]string) (Mapping, bool) {
	get := func(k string) string { return strings.TrimSpace(f[k]) }
	proto, err := ParseProtocol(get("NewProtocol"))
	if err != nil {
		return Mapping{}, false
	}
	ep, err1 := strconv.ParseUint(get("NewExternalPort"), 10, 16)
	ip, err2 := strconv.ParseUint(get("NewInternalPort"), 10, 16)
	if err1 != nil || err2 != nil {
		return Mapping{}, false
	}
	addr, _ := netip.ParseAddr(get("NewInternalClient"))
	lease, _ := strconv.ParseUint(get("NewLeaseTime"), 10, 32)
	enabled := get("NewEnabled") == "1" || strings.EqualFold(get("NewEnabled"), "true")
	return Mapping{
		Protocol: proto, ExternalPort: uint16(ep), InternalAddr: addr.Unmap(), InternalPort: uint16(ip),
		Description: f["NewDescription"], Lease: time.Duration(lease) * time.Second, Enabled: enabled,
		RemoteHost: get("NewRemoteHost"), Method: MethodUPnP,
	}, true
}
