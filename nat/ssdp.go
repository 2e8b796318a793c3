package nat

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// SSDP constants (UPnP Device Architecture 1.1, section 1.3).
const (
	ssdpPort        = 1900
	ssdpMaxDatagram = 2048 // an SSDP response is a few hundred bytes
	ssdpMaxIgnored  = 16   // foreign responses remembered for the report
	ssdpMaxPackets  = 256  // datagrams read in one search, whatever they are
	// ssdpShare/3 of the UPnP bound goes to the search (1 s of the default
	// 1.5 s): a gateway answers a unicast M-SEARCH at once; the rest is for
	// the description and the first SOAP calls.
	ssdpShare = 2
)

var ssdpMulticast = netip.AddrPortFrom(netip.MustParseAddr("239.255.255.250"), ssdpPort)

// Search targets of an Internet Gateway Device, newest first.
var igdSearchTargets = []string{
	"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
	"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
}

// SSDPResponse is one parsed answer to an M-SEARCH.
type SSDPResponse struct {
	From     netip.AddrPort
	Location *url.URL
	ST       string
	USN      string
	Server   string
}

// ParseSSDPResponse parses one SSDP response datagram (HTTP over UDP).
func ParseSSDPResponse(b []byte) (SSDPResponse, error) {
	var r SSDPResponse
	if len(b) > ssdpMaxDatagram {
		return r, fmt.Errorf("%w: SSDP datagram of %d bytes", ErrTooLarge, len(b))
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return r, fmt.Errorf("%w: SSDP: %v", ErrMalformed, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%w: SSDP status %d", ErrMalformed, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return r, fmt.Errorf("%w: SSDP response without Location", ErrMalformed)
	}
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return r, fmt.Errorf("%w: SSDP Location %q is not an http URL", ErrMalformed, loc)
	}
	r.Location = u
	r.ST = resp.Header.Get("ST")
	r.USN = resp.Header.Get("USN")
	r.Server = resp.Header.Get("Server")
	return r, nil
}

// igdFamily reports whether an SSDP answer's ST may be an Internet
// Gateway Device's: a device or service type of the IGD's own tree (some
// routers answer an IGD search with their WANDevice's type, D-Link DIR-890L),
// or anything that names no type (upnp:rootdevice, a uuid, nothing).
func igdFamily(st string) bool {
	st = strings.TrimSpace(st)
	typed := strings.HasPrefix(st, "urn:") && (strings.Contains(st, ":device:") || strings.Contains(st, ":service:"))
	if !typed {
		return true
	}
	for _, t := range []string{"InternetGatewayDevice", "WANDevice", "WANConnectionDevice", "WANIPConnection", "WANPPPConnection",
		"Layer3Forwarding", "WANCommonInterfaceConfig", "WANIPv6FirewallControl"} {
		if strings.Contains(st, ":"+t+":") {
			return true
		}
	}
	return false
}

// standbyOf reports whether r could be the gateway's CARP or VRRP peer:
// an IPv4 neighbour in the gateway's /24 whose Location is on itself.
func standbyOf(gw netip.Addr, r SSDPResponse) bool {
	a := r.From.Addr()
	h, ok := locationHost(r.Location)
	if !ok || h != a || !a.Is4() || !gw.Is4() {
		return false
	}
	p, err := gw.Prefix(24)
	return err == nil && p.Contains(a)
}

// locationHost returns the address of an http URL's host, if it is an IP.
func locationHost(u *url.URL) (netip.Addr, bool) {
	a, err := netip.ParseAddr(u.Hostname())
	return a.Unmap(), err == nil
}

func searchRequest(st string, host string) []byte {
	return []byte("M-SEARCH * HTTP/1.1\r\n" +
		"HOST: " + host + "\r\n" +
		"MAN: \"ssdp:discover\"\r\n" +
		"MX: 1\r\n" +
		"ST: " + st + "\r\n\r\n")
}

// searchIGD asks for an Internet Gateway Device, by multicast (when
// multicast is set) and by unicast to the gateway, and returns the first
// answer that comes from the gateway and names a Location on it. Answers
// from other hosts are ignored and described in ignored, but for one from
// the gateway's /24 whose Location is on itself: if the gateway never
// answers, that one is returned (a CARP or VRRP pair answers from its own
// address, not the shared one). It returns as soon as the gateway has
// answered.
func searchIGD(ctx context.Context, gw, local netip.Addr, port uint16, multicast bool) (found SSDPResponse, ignored []string, err error) {
	var standby SSDPResponse // an IGD next to the gateway, used only if the gateway stays silent
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return found, nil, fmt.Errorf("SSDP: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()

	unicast := netip.AddrPortFrom(gw, port)
	send := func() error {
		for _, st := range igdSearchTargets {
			if _, err := conn.WriteToUDPAddrPort(searchRequest(st, unicast.String()), unicast); err != nil {
				return err
			}
			if multicast {
				// Errors are expected on hosts without a multicast route.
				_, _ = conn.WriteToUDPAddrPort(searchRequest(st, ssdpMulticast.String()), ssdpMulticast)
			}
		}
		return nil
	}
	if err := send(); err != nil {
		return found, nil, fmt.Errorf("SSDP: %w", err)
	}
	err = readSSDP(ctx, conn, send, func(r SSDPResponse, perr error) bool {
		note := func(why string) {
			if len(ignored) < ssdpMaxIgnored {
				ignored = append(ignored, fmt.Sprintf("%s: %s", r.From, why))
			}
		}
		switch {
		case perr != nil:
			note(perr.Error())
		case r.From.Addr() != gw && standbyOf(gw, r) && !standby.From.IsValid():
			// Kept in case the gateway itself never answers: a CARP
			// pair answers from its own address.
			standby = r
		case r.From.Addr() != gw:
			note(fmt.Sprintf("an IGD on another host than the gateway %s (Location %s)", gw, r.Location))
		case !igdFamily(r.ST):
			// A box with several root devices may answer each search
			// with each of them (the Orange Livebox).
			note(fmt.Sprintf("the gateway's %s, not an Internet Gateway Device (Location %s)", r.ST, r.Location))
		default:
			if h, ok := locationHost(r.Location); !ok || h != gw {
				note(fmt.Sprintf("Location %s points away from the gateway %s", r.Location, gw))
				return false
			}
			found = r
			return true
		}
		return false
	})
	switch {
	case err == nil:
		return found, ignored, nil
	case errors.Is(err, errSSDPSilent) && standby.From.IsValid():
		return standby, ignored, nil
	case errors.Is(err, errSSDPSilent):
		return found, ignored, fmt.Errorf("SSDP: %w (no Internet Gateway Device answered from %s)", ErrNoResponse, gw)
	case errors.Is(err, errSSDPFlood):
		return found, ignored, fmt.Errorf("SSDP: %w: too many datagrams and none from the gateway", ErrMalformed)
	case errors.Is(err, context.Canceled):
		if standby.From.IsValid() {
			return standby, ignored, nil
		}
		return found, ignored, err
	}
	return found, ignored, fmt.Errorf("SSDP: %w", err)
}

// Outcomes of readSSDP other than the callback's "done".
var (
	errSSDPSilent = errors.New("no answer before the deadline")
	errSSDPFlood  = errors.New("too many datagrams")
)

// readSSDP reads answers to the M-SEARCHes send sent, sending them again
// while nothing arrives (UDP may drop the first), and hands each datagram
// to each until each says it is done (nil). It ends with errSSDPSilent
// when ctx's deadline passes, ctx.Err() when ctx is cancelled, and
// errSSDPFlood after ssdpMaxPackets datagrams.
func readSSDP(ctx context.Context, conn *net.UDPConn, send func() error, each func(r SSDPResponse, perr error) (done bool)) error {
	buf := make([]byte, ssdpMaxDatagram+1)
	resend := time.Now().Add(300 * time.Millisecond)
	for packets := 0; packets < ssdpMaxPackets; {
		dl := resend
		if d, ok := ctx.Deadline(); ok && d.Before(dl) {
			dl = d
		}
		_ = conn.SetReadDeadline(dl)
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if expired(ctx) {
				if errors.Is(ctx.Err(), context.Canceled) {
					return ctx.Err()
				}
				return errSSDPSilent
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = send()
				resend = time.Now().Add(600 * time.Millisecond)
				continue
			}
			return err
		}
		packets++
		r, perr := ParseSSDPResponse(buf[:n])
		r.From = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if each(r, perr) {
			return nil
		}
	}
	return errSSDPFlood
}
