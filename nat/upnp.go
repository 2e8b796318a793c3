package nat

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
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
	// Workarounds say what natdoctor did about this device's departures
	// from the UPnP IGD spec, in words.
	Workarounds []string `json:"workarounds,omitempty"`
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

	// mu guards conn and Device while reopen may replace them.
	mu sync.Mutex
	// reopen, set on a client made from natdoctor's cache without asking
	// the router, finds the service again (SSDP, description) when a
	// request to the cached control URL fails on the way: a router that
	// restarted on another port. Used once.
	reopen func(context.Context) (*UPnP, error)
}

// wan returns the WAN connection client.
func (u *UPnP) wan() wanConnection {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conn
}

// do runs one request on the WAN connection. When nothing answers at the
// control URL of a client made from the cache, the service is found again
// and the request sent once more; otherwise such an error wraps
// ErrServiceGone.
func (u *UPnP) do(ctx context.Context, f func(wanConnection) error) error {
	err := f(u.wan())
	if err == nil || !staleService(err) {
		return err
	}
	err = fmt.Errorf("%w: %w", ErrServiceGone, err)
	u.mu.Lock()
	reopen := u.reopen
	u.reopen = nil
	u.mu.Unlock()
	if reopen == nil || ctx.Err() != nil {
		return err
	}
	fresh, ferr := reopen(ctx)
	if ferr != nil {
		return fmt.Errorf("%w (and finding the service again failed: %v)", err, ferr)
	}
	u.mu.Lock()
	u.conn, u.Device = fresh.conn, fresh.Device
	u.mu.Unlock()
	u.count()
	return f(u.wan())
}

// FromCache reports whether u was made from natdoctor's cache without
// asking the router, and has not been found again since.
func (u *UPnP) FromCache() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reopen != nil
}

// staleService reports whether err says the control URL is gone: nothing
// listens on its port, or nothing is at its path.
func staleService(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "got HTTP 404")
}

// Method returns MethodUPnP.
func (u *UPnP) Method() Method { return MethodUPnP }

func (u *UPnP) count() {
	if u.calls != nil {
		u.calls()
	}
}

// ExternalAddr returns the router's external address.
func (u *UPnP) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	u.count()
	var s string
	err := u.do(ctx, func(c wanConnection) (err error) {
		s, err = c.GetExternalIPAddressCtx(ctx)
		return err
	})
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
	var s string
	var up uint32
	err = u.do(ctx, func(c wanConnection) (err error) {
		s, _, up, err = c.GetStatusInfoCtx(ctx)
		return err
	})
	if err != nil {
		return "", 0, soapError("GetStatusInfo", err)
	}
	return s, time.Duration(up) * time.Second, nil
}

// leaseLadderShort is the finite lease tried when a router refuses a
// longer one with 402.
const leaseLadderShort = 3600

// Add creates or renews a mapping. Lease negotiation: a router that only
// takes permanent leases (725) gets 0; one that refuses a permanent lease
// (402 or 501 on 0) gets DefaultPMPLease; one that refuses a lease longer
// than an hour with 402 gets an hour, then a permanent one. The returned
// mapping holds the lease that was granted.
func (u *UPnP) Add(ctx context.Context, req Request) (Mapping, error) {
	lease := uint32(req.Lease / time.Second)
	add := func(lease uint32) error {
		u.count()
		return soapError("AddPortMapping", u.do(ctx, func(c wanConnection) error {
			return c.AddPortMappingCtx(ctx, "", req.ExternalPort, string(req.Protocol),
				req.InternalPort, req.InternalAddr.String(), !req.Disabled, req.Description, lease)
		}))
	}
	err := add(lease)
	switch code := UPnPCode(err); {
	case code == UPnPOnlyPermanentLeasesSupported && lease != 0:
		lease = 0
		err = add(lease)
	case (code == UPnPInvalidArgs || code == 501) && lease == 0:
		lease = uint32(DefaultPMPLease / time.Second)
		err = add(lease)
	case code == UPnPInvalidArgs && lease > leaseLadderShort:
		// Routers with a lease limit answer 402 for a longer lease
		// (TP-Link and others): the lease ladder, a finite lease first
		// (it lapses if natdoctor is gone), a permanent one last.
		for _, l := range []uint32{leaseLadderShort, 0} {
			if lease, err = l, add(l); UPnPCode(err) != UPnPInvalidArgs {
				break
			}
		}
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
	err := soapError("DeletePortMapping", u.do(ctx, func(c wanConnection) error {
		return c.DeletePortMappingCtx(ctx, "", externalPort, string(proto))
	}))
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
	if _, ok := u.wan().(soapRangeDeleter); !ok {
		return fmt.Errorf("UPnP DeletePortMappingRange: %w", ErrUnsupported)
	}
	u.count()
	return soapError("DeletePortMappingRange", u.do(ctx, func(c wanConnection) error {
		rd, ok := c.(soapRangeDeleter)
		if !ok {
			return fmt.Errorf("UPnP DeletePortMappingRange: %w", ErrUnsupported)
		}
		return rd.DeletePortMappingRangeCtx(ctx, lo, hi, string(proto), false)
	}))
}

// Get returns the mapping of proto/externalPort or an error wrapping
// ErrNoSuchMapping.
func (u *UPnP) Get(ctx context.Context, proto Protocol, externalPort uint16) (Mapping, error) {
	u.count()
	var ip uint16
	var client, desc string
	var enabled bool
	var lease uint32
	err := u.do(ctx, func(c wanConnection) (err error) {
		ip, client, enabled, desc, lease, err = c.GetSpecificPortMappingEntryCtx(ctx, "", externalPort, string(proto))
		return err
	})
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
