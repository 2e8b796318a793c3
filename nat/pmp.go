package nat

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
)

// pmpPort is the NAT-PMP and PCP server port on the gateway (RFC 6886, RFC 6887).
const pmpPort = 5351

// DefaultPMPLease is the lifetime asked for when a NAT-PMP or PCP mapping
// asks for "permanent": both protocols only grant finite leases.
const DefaultPMPLease = 2 * time.Hour

// PMPResultCode is a NAT-PMP result code (RFC 6886 section 3.5).
type PMPResultCode uint16

// NAT-PMP result codes.
const (
	PMPSuccess            PMPResultCode = 0
	PMPUnsupportedVersion PMPResultCode = 1
	PMPNotAuthorized      PMPResultCode = 2
	PMPNetworkFailure     PMPResultCode = 3
	PMPOutOfResources     PMPResultCode = 4
	PMPUnsupportedOpcode  PMPResultCode = 5
)

var pmpCodeNames = map[PMPResultCode]string{
	PMPSuccess:            "SUCCESS",
	PMPUnsupportedVersion: "UNSUPPORTED_VERSION",
	PMPNotAuthorized:      "NOT_AUTHORIZED",
	PMPNetworkFailure:     "NETWORK_FAILURE",
	PMPOutOfResources:     "OUT_OF_RESOURCES",
	PMPUnsupportedOpcode:  "UNSUPPORTED_OPCODE",
}

// String returns the code's RFC name.
func (c PMPResultCode) String() string {
	if n, ok := pmpCodeNames[c]; ok {
		return n
	}
	return "UNKNOWN_" + strconv.Itoa(int(c))
}

// PMPError is a non-zero NAT-PMP result code.
type PMPError struct {
	Code PMPResultCode
	Op   string
}

func (e *PMPError) Error() string {
	msg := fmt.Sprintf("NAT-PMP %s: result %d %s", e.Op, uint16(e.Code), e.Code)
	switch e.Code {
	case PMPNotAuthorized:
		msg += " (the router refuses this mapping by policy, or port mapping is disabled)"
	case PMPNetworkFailure:
		msg += " (the router has no usable external address: its internet line is down, or its own WAN address is private, as behind a second router or the provider's NAT, double NAT)"
	case PMPOutOfResources:
		msg += " (the router's mapping table is full)"
	}
	return msg
}

// Is makes NETWORK_FAILURE match ErrNoExternalAddr.
func (e *PMPError) Is(target error) bool {
	return target == ErrNoExternalAddr && e.Code == PMPNetworkFailure
}

// PMP is a NAT-PMP client (RFC 6886) built on jackpal/go-nat-pmp. The
// library's client retries for about 128 s and takes no context: every call
// here is bounded by the context and the client's timeout.
type PMP struct {
	gw, local netip.Addr
	timeout   time.Duration
}

// NewPMP returns a NAT-PMP client for gw, sending from local, each call
// bounded by timeout.
func NewPMP(gw, local netip.Addr, timeout time.Duration) *PMP {
	return &PMP{gw: gw, local: local, timeout: timeout}
}

// Method returns MethodNATPMP.
func (p *PMP) Method() Method { return MethodNATPMP }

var pmpCodeRE = regexp.MustCompile(`Non-zero result code (\d+)`)

// call runs f with a bounded client; a cancelled ctx returns at once (the
// library's goroutine ends within its own timeout).
func (p *PMP) call(ctx context.Context, op string, f func(*natpmp.Client) error) error {
	t := remaining(ctx, p.timeout)
	if t <= 0 {
		return ctx.Err()
	}
	c := natpmp.NewClientWithLocalAndTimeout(net.IP(p.gw.AsSlice()), net.IP(p.local.AsSlice()), t)
	done := make(chan error, 1)
	go func() { done <- f(c) }()
	select {
	case err := <-done:
		return p.convert(op, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// convert turns go-nat-pmp's string errors into typed ones.
func (p *PMP) convert(op string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if m := pmpCodeRE.FindStringSubmatch(msg); m != nil {
		code, _ := strconv.Atoi(m[1])
		return &PMPError{Code: PMPResultCode(code), Op: op}
	}
	switch {
	case strings.Contains(msg, "Timed out"):
		return fmt.Errorf("NAT-PMP %s: %w (no reply from %s:%d)", op, ErrNoResponse, p.gw, pmpPort)
	case strings.Contains(msg, "version 2"):
		return fmt.Errorf("NAT-PMP %s: the router answered with PCP only: %w", op, ErrMalformed)
	case strings.Contains(msg, "unexpected result size"), strings.Contains(msg, "Unexpected opcode"), strings.Contains(msg, "unknown protocol version"):
		return fmt.Errorf("NAT-PMP %s: %w: %v", op, ErrMalformed, err)
	}
	return fmt.Errorf("NAT-PMP %s: %w", op, err)
}

// ExternalAddrEpoch returns the router's external address and the seconds
// since its epoch began (a restart makes it go backwards).
func (p *PMP) ExternalAddrEpoch(ctx context.Context) (netip.Addr, uint32, error) {
	var res *natpmp.GetExternalAddressResult
	err := p.call(ctx, "external address", func(c *natpmp.Client) (err error) {
		res, err = c.GetExternalAddress()
		return err
	})
	if err != nil {
		return netip.Addr{}, 0, err
	}
	return netip.AddrFrom4(res.ExternalIPAddress), res.SecondsSinceStartOfEpoc, nil
}

// ExternalAddr returns the router's external address.
func (p *PMP) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	a, _, err := p.ExternalAddrEpoch(ctx)
	return a, err
}

// Add maps req for this host. NAT-PMP can only map to the requesting host
// and only grants finite lifetimes. A mapping granted on another external
// port is returned together with a *PortMovedError.
func (p *PMP) Add(ctx context.Context, req Request) (Mapping, error) {
	if req.InternalAddr.IsValid() && req.InternalAddr != p.local {
		return Mapping{}, fmt.Errorf("NAT-PMP can only map ports to the host that asks (%s), not %s", p.local, req.InternalAddr)
	}
	lease := req.Lease
	if lease <= 0 {
		lease = DefaultPMPLease
	}
	var res *natpmp.AddPortMappingResult
	op := fmt.Sprintf("map %s %d", req.Protocol, req.ExternalPort)
	err := p.call(ctx, op, func(c *natpmp.Client) (err error) {
		res, err = c.AddPortMappingWithDuration(strings.ToLower(string(req.Protocol)), int(req.InternalPort), int(req.ExternalPort), lease)
		return err
	})
	if err != nil {
		return Mapping{}, err
	}
	m := Mapping{
		Protocol: req.Protocol, ExternalPort: res.MappedExternalPort,
		InternalAddr: p.local, InternalPort: res.InternalPort,
		Lease: time.Duration(res.PortMappingLifetimeInSeconds) * time.Second, Enabled: true,
		Method: MethodNATPMP, Epoch: res.SecondsSinceStartOfEpoc,
	}
	if res.MappedExternalPort != req.ExternalPort {
		return m, &PortMovedError{Requested: req.ExternalPort, Granted: res.MappedExternalPort, Protocol: req.Protocol, Method: MethodNATPMP}
	}
	return m, nil
}

// Delete removes this host's mapping of internalPort (NAT-PMP keys
// mappings by internal port; externalPort is not used).
func (p *PMP) Delete(ctx context.Context, proto Protocol, externalPort, internalPort uint16) error {
	return p.call(ctx, fmt.Sprintf("unmap %s %d", proto, internalPort), func(c *natpmp.Client) error {
		_, err := c.AddPortMapping(strings.ToLower(string(proto)), int(internalPort), 0, 0)
		return err
	})
}
