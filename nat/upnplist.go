package nat

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bulk returns IGD v2's GetListOfPortMappings, sent through do, when the
// service has it.
func (u *UPnP) bulk() (bulkLister, bool) {
	if _, ok := u.wan().(bulkLister); !ok {
		return nil, false
	}
	return bulkVia{u}, true
}

// bulkVia sends GetListOfPortMappings through its client's do.
type bulkVia struct{ u *UPnP }

func (b bulkVia) GetListOfPortMappingsCtx(ctx context.Context, startPort, endPort uint16, protocol string, manage bool, number uint16) (string, error) {
	var s string
	err := b.u.do(ctx, func(c wanConnection) error {
		bl, ok := c.(bulkLister)
		if !ok {
			return fmt.Errorf("UPnP GetListOfPortMappings: %w", ErrUnsupported)
		}
		var err error
		s, err = bl.GetListOfPortMappingsCtx(ctx, startPort, endPort, protocol, manage, number)
		return err
	})
	return s, err
}

// List returns every mapping, with IGD v2's GetListOfPortMappings in pages
// by port range, falling back to GetGenericPortMappingEntry when the bulk
// call is missing or fails.
func (u *UPnP) List(ctx context.Context) ([]Mapping, error) {
	if bl, ok := u.bulk(); ok {
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
	_, ok := u.bulk()
	return ok
}

// Lookup returns the mappings of exactly these ports: on IGD v2 with
// GetListOfPortMappings (lookupBulk: usually one request), else, or when
// the bulk call fails, one GetSpecificPortMappingEntry per port. One port
// is always a GetSpecificPortMappingEntry: one request either way, and
// miniupnpd answers it faster (lab: by about 0.1 s with 72 mappings).
// Ports that are not mapped are simply absent.
func (u *UPnP) Lookup(ctx context.Context, proto Protocol, ports []uint16) ([]Mapping, error) {
	if bl, ok := u.bulk(); ok && len(ports) > 1 {
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

// unreadableReply reports whether err is an HTTP answer that is no SOAP
// reply (a body that is not XML, an HTTP error without a fault), as
// opposed to no answer at all.
func unreadableReply(err error) bool {
	msg := err.Error()
	return !errors.Is(err, ErrNoResponse) && !errors.Is(err, ErrTooLarge) &&
		(strings.Contains(msg, "goupnp: error decoding response body") || strings.Contains(msg, "goupnp: SOAP request got HTTP") ||
			strings.Contains(msg, "goupnp: error unmarshalling out action"))
}

func (u *UPnP) listGeneric(ctx context.Context) ([]Mapping, error) {
	var all []Mapping
	seen := map[string]bool{}
	bad, repeats := 0, 0
	for i := 0; i < maxGenericIndex; i++ {
		u.count()
		var rh, proto, client, desc string
		var ep, ip uint16
		var enabled bool
		var lease uint32
		err := u.do(ctx, func(c wanConnection) (err error) {
			rh, ep, proto, ip, client, enabled, desc, lease, err = c.GetGenericPortMappingEntryCtx(ctx, uint16(i))
			return err
		})
		if err != nil {
			err = soapError("GetGenericPortMappingEntry", err)
			// The spec ends the table with 713; routers also answer 714
			// and 402 (InvalidArgs) for the index past the end.
			if c := UPnPCode(err); c == UPnPSpecifiedArrayIndexInvalid || c == UPnPNoSuchEntryInArray || c == UPnPInvalidArgs {
				return all, nil
			}
			if i > 0 && unreadableReply(err) {
				// Some routers end the table with an answer that is no
				// SOAP reply at all. Past entries stand; what follows, if
				// anything, is unknown, and the caller says so.
				return all, fmt.Errorf("%w after %d entries: the router's answer for entry %d could not be read (%v)", ErrListIncomplete, i, i, err)
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
