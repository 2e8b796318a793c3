package nat

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Protocol is a transport protocol of a port mapping.
type Protocol string

// The protocols a mapping can carry.
const (
	TCP Protocol = "TCP"
	UDP Protocol = "UDP"
)

// ParseProtocol accepts tcp or udp in any case.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToUpper(s) {
	case "TCP":
		return TCP, nil
	case "UDP":
		return UDP, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want tcp or udp)", s)
}

// Method is a port-mapping protocol.
type Method string

// The port-mapping protocols natdoctor speaks.
const (
	MethodUPnP   Method = "upnp"
	MethodNATPMP Method = "natpmp"
	MethodPCP    Method = "pcp"
)

// ProtocolInfo describes a port-mapping protocol natdoctor speaks.
type ProtocolInfo struct {
	Method Method
	Name   string // as people write it
	Spec   string // where it is defined
	// CanList: the protocol can look mappings up and list them, so a
	// mapping of another host can be seen, a renewal told from a creation,
	// and a roll-back made exactly.
	CanList bool
}

// Protocols are the port-mapping protocols, in the order --via auto
// prefers them: UPnP IGD can list, label, map for another host and name a
// conflict; PCP (RFC 6887) has nonces and PREFER_FAILURE; NAT-PMP (RFC
// 6886) is what is left. --via, completion, discovery and the mapper read
// this table.
var Protocols = []ProtocolInfo{
	{MethodUPnP, "UPnP IGD", "UPnP Forum IGD v1/v2", true},
	{MethodPCP, "PCP", "RFC 6887", false},
	{MethodNATPMP, "NAT-PMP", "RFC 6886", false},
}

// ViaChoices are the values of --via: auto, then every protocol.
func ViaChoices() []string {
	c := []string{"auto"}
	for _, p := range Protocols {
		c = append(c, string(p.Method))
	}
	return c
}

// Info returns the table entry of m, and whether m is a protocol.
func (m Method) Info() (ProtocolInfo, bool) {
	for _, p := range Protocols {
		if p.Method == m {
			return p, true
		}
	}
	return ProtocolInfo{Method: m, Name: string(m)}, false
}

// Mapping is one port mapping on the router.
type Mapping struct {
	Protocol     Protocol      `json:"protocol"`
	ExternalPort uint16        `json:"external_port"`
	InternalAddr netip.Addr    `json:"internal_client"`
	InternalPort uint16        `json:"internal_port"`
	Description  string        `json:"description"`
	Lease        time.Duration `json:"-"` // 0 is permanent (UPnP only)
	Enabled      bool          `json:"enabled"`
	RemoteHost   string        `json:"remote_host"`
	ExternalAddr netip.Addr    `json:"-"` // when the router said (PCP, NAT-PMP)
	Method       Method        `json:"-"`
	Epoch        uint32        `json:"-"` // NAT-PMP/PCP seconds since the router's epoch
}

// String describes m as "TCP 21 -> 10.0.1.2:21".
func (m Mapping) String() string {
	return fmt.Sprintf("%s %d -> %s:%d", m.Protocol, m.ExternalPort, m.InternalAddr, m.InternalPort)
}

// Request asks for one mapping.
type Request struct {
	Protocol     Protocol
	ExternalPort uint16
	InternalAddr netip.Addr // the mapping's target; this host for NAT-PMP/PCP
	InternalPort uint16
	Description  string
	Lease        time.Duration // 0 asks for a permanent mapping (UPnP)
	// Disabled makes a mapping that exists but forwards nothing (UPnP
	// only): a restore puts back a disabled mapping as it was.
	Disabled bool
}

// Router is a port-mapping service on the gateway, spoken through one protocol.
type Router interface {
	// Method names the protocol.
	Method() Method
	// ExternalAddr returns the router's external (WAN) address.
	ExternalAddr(ctx context.Context) (netip.Addr, error)
	// Add creates or renews a mapping and returns what the router granted.
	Add(ctx context.Context, req Request) (Mapping, error)
	// Delete removes the mapping of proto/externalPort (internalPort for
	// NAT-PMP and PCP, which key mappings by internal port).
	Delete(ctx context.Context, proto Protocol, externalPort, internalPort uint16) error
}

// Lister is a Router that can list and look up mappings (UPnP IGD).
type Lister interface {
	Router
	// List returns every mapping the router will tell.
	List(ctx context.Context) ([]Mapping, error)
	// Get returns the mapping of proto/externalPort, or ErrNoSuchMapping.
	Get(ctx context.Context, proto Protocol, externalPort uint16) (Mapping, error)
	// Lookup returns the mappings of exactly these ports, in as few
	// requests as the router allows; unmapped ports are absent.
	Lookup(ctx context.Context, proto Protocol, ports []uint16) ([]Mapping, error)
}

// Errors natdoctor's callers test for.
var (
	// ErrNoGateway means no IPv4 default gateway was found.
	ErrNoGateway = errors.New("no IPv4 default gateway")
	// ErrNoResponse means the router did not answer in time.
	ErrNoResponse = errors.New("the router did not answer")
	// ErrServiceGone means nothing answers at the UPnP service's control
	// URL any more (connection refused, 404): a router that restarted, or
	// turned UPnP off.
	ErrServiceGone = errors.New("nothing answers at the router's UPnP address")
	// ErrNoSuchMapping means the router has no such mapping.
	ErrNoSuchMapping = errors.New("no such mapping")
	// ErrTooLarge means a reply exceeded natdoctor's size bound.
	ErrTooLarge = errors.New("reply too large")
	// ErrMalformed means a reply could not be parsed.
	ErrMalformed = errors.New("malformed reply")
	// ErrListIncomplete: a listing stopped at an answer natdoctor could
	// not read; the mappings before it are returned with it.
	ErrListIncomplete = errors.New("the listing stopped early")
	// ErrNoExternalAddr means the router answered but has no usable
	// external address: its WAN link is down, or (miniupnpd and others
	// refuse to map then) its WAN address is private, shared or reserved.
	ErrNoExternalAddr = errors.New("the router reports no usable external address")
	// ErrUnsupported means the router does not offer the action.
	ErrUnsupported = errors.New("the router does not offer this action")
	// ErrCannotList means the protocol cannot list mappings.
	ErrCannotList = errors.New("NAT-PMP and PCP cannot list mappings")
)

// PortMovedError means the router granted another external port than the
// one asked for: a passive FTP port moved elsewhere is a broken setup.
type PortMovedError struct {
	Requested, Granted uint16
	Protocol           Protocol
	Method             Method
}

func (e *PortMovedError) Error() string {
	return fmt.Sprintf("%s: asked for external %s port %d, the router gave %d (the port is probably taken by another host)",
		e.Method, e.Protocol, e.Requested, e.Granted)
}

// remaining returns how long ctx has left, or fallback when it has no deadline.
func remaining(ctx context.Context, fallback time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < fallback {
			return left
		}
	}
	return fallback
}

// expired reports whether ctx is done or its deadline has passed. A socket
// deadline set to the context's deadline may fire before ctx's own timer.
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}
