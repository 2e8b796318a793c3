package nat

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// PCP wire constants (RFC 6887).
const (
	pcpVersion        = 2
	pcpOpAnnounce     = 0
	pcpOpMap          = 1
	pcpHeaderLen      = 24
	pcpMapPayloadLen  = 36
	pcpMaxMessage     = 1100 // RFC 6887 section 7: messages never exceed 1100 bytes
	pcpInitialRetrans = 250 * time.Millisecond
	pcpMaxRetrans     = 2 * time.Second
	ianaTCP           = 6
	ianaUDP           = 17
)

// PCPResultCode is a PCP result code (RFC 6887 section 7.4).
type PCPResultCode uint8

// PCP result codes.
const (
	PCPSuccess               PCPResultCode = 0
	PCPUnsuppVersion         PCPResultCode = 1
	PCPNotAuthorized         PCPResultCode = 2
	PCPMalformedRequest      PCPResultCode = 3
	PCPUnsuppOpcode          PCPResultCode = 4
	PCPUnsuppOption          PCPResultCode = 5
	PCPMalformedOption       PCPResultCode = 6
	PCPNetworkFailure        PCPResultCode = 7
	PCPNoResources           PCPResultCode = 8
	PCPUnsuppProtocol        PCPResultCode = 9
	PCPUserExQuota           PCPResultCode = 10
	PCPCannotProvideExternal PCPResultCode = 11
	PCPAddressMismatch       PCPResultCode = 12
	PCPExcessiveRemotePeers  PCPResultCode = 13
)

var pcpCodeNames = [...]string{
	"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST", "UNSUPP_OPCODE",
	"UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE", "NO_RESOURCES", "UNSUPP_PROTOCOL",
	"USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL", "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
}

// String returns the code's RFC name.
func (c PCPResultCode) String() string {
	if int(c) < len(pcpCodeNames) {
		return pcpCodeNames[c]
	}
	return "UNKNOWN_" + strconv.Itoa(int(c))
}

// PCPError is a non-zero PCP result code.
type PCPError struct {
	Code PCPResultCode
	Op   string
	// External is the external address the error response carries, if
	// any: miniupnpd fills in its own WAN address.
	External netip.Addr
}

func (e *PCPError) Error() string {
	msg := fmt.Sprintf("PCP %s: result %d %s", e.Op, uint8(e.Code), e.Code)
	switch {
	case e.Code == PCPUnsuppVersion:
		msg += " (the router speaks NAT-PMP, not PCP)"
	case e.Code == PCPNotAuthorized:
		msg += " (the router refuses this mapping by policy)"
	case e.Code == PCPCannotProvideExternal:
		msg += " (the external port is taken or not allowed)"
	case e.Code == PCPAddressMismatch:
		msg += " (another NAT between this host and the router rewrote the address)"
	case e.behindNAT():
		msg += fmt.Sprintf(" (the router's own external address is %s, a %s address: it sits behind another NAT, double NAT, and no mapping on it can reach the internet)",
			e.External, ClassifyAddr(e.External))
	case e.Code == PCPNetworkFailure:
		msg += " (the router has no usable external address: its internet line is down, or it sits behind another NAT)"
	case e.Code == PCPNoResources:
		msg += " (the router could not make the mapping: its table is full, or every port it allows is taken)"
	}
	return msg
}

// behindNAT reports whether the error response names a router external
// address that is not public (miniupnpd under double NAT answers MAP with
// NO_RESOURCES and its 100.64/10 WAN address).
func (e *PCPError) behindNAT() bool {
	if e.Code != PCPNoResources && e.Code != PCPNetworkFailure {
		return false
	}
	a := e.External
	return a.IsValid() && !a.IsUnspecified() && ClassifyAddr(a) != AddrPublic
}

// Is makes NETWORK_FAILURE, and NO_RESOURCES from a router whose own
// external address is not public, match ErrNoExternalAddr.
func (e *PCPError) Is(target error) bool {
	return target == ErrNoExternalAddr && (e.Code == PCPNetworkFailure || e.behindNAT())
}

// ErrPCPUnsupported means the router answered a PCP request in NAT-PMP
// (version 0) or with UNSUPP_VERSION: use NAT-PMP instead.
var ErrPCPUnsupported = errors.New("the router does not speak PCP version 2")

// pcpResponse is a parsed PCP response.
type pcpResponse struct {
	Opcode   uint8
	Result   PCPResultCode
	Lifetime uint32
	Epoch    uint32
	// MAP only:
	Nonce        [12]byte
	Protocol     uint8
	InternalPort uint16
	ExternalPort uint16
	ExternalAddr netip.Addr
}

// parsePCPResponse parses a PCP response. It returns ErrPCPUnsupported for
// a NAT-PMP (version 0) answer.
func parsePCPResponse(b []byte) (pcpResponse, error) {
	var r pcpResponse
	if len(b) >= 2 && b[0] == 0 {
		return r, ErrPCPUnsupported
	}
	if len(b) < pcpHeaderLen {
		return r, fmt.Errorf("%w: PCP response of %d bytes, want at least %d", ErrMalformed, len(b), pcpHeaderLen)
	}
	if len(b) > pcpMaxMessage || len(b)%4 != 0 {
		return r, fmt.Errorf("%w: PCP response length %d", ErrMalformed, len(b))
	}
	if b[0] != pcpVersion {
		return r, fmt.Errorf("%w: PCP version %d", ErrMalformed, b[0])
	}
	if b[1]&0x80 == 0 {
		return r, fmt.Errorf("%w: PCP message is a request, not a response", ErrMalformed)
	}
	r.Opcode = b[1] & 0x7f
	r.Result = PCPResultCode(b[3])
	r.Lifetime = binary.BigEndian.Uint32(b[4:8])
	r.Epoch = binary.BigEndian.Uint32(b[8:12])
	if r.Opcode == pcpOpMap && (r.Result == PCPSuccess || len(b) >= pcpHeaderLen+pcpMapPayloadLen) {
		if len(b) < pcpHeaderLen+pcpMapPayloadLen {
			return r, fmt.Errorf("%w: PCP MAP response of %d bytes", ErrMalformed, len(b))
		}
		p := b[pcpHeaderLen:]
		copy(r.Nonce[:], p[0:12])
		r.Protocol = p[12]
		r.InternalPort = binary.BigEndian.Uint16(p[16:18])
		r.ExternalPort = binary.BigEndian.Uint16(p[18:20])
		r.ExternalAddr = netip.AddrFrom16([16]byte(p[20:36])).Unmap()
	}
	return r, nil
}

// PCP is a Port Control Protocol client (RFC 6887), written by hand.
//
// A PCP server ties a mapping to the nonce that created it and refuses to
// renew or delete it with another (RFC 6887 section 11.2). natdoctor derives
// each mapping's nonce from a secret key kept on this host, so that a later
// run can renew or remove what an earlier one made.
type PCP struct {
	gw, local netip.Addr
	port      uint16
	timeout   time.Duration
	key       []byte
}

// NewPCP returns a PCP client for gw, sending from local, each exchange
// bounded by timeout. key is the secret that mapping nonces derive from.
func NewPCP(gw, local netip.Addr, timeout time.Duration, key []byte) *PCP {
	return &PCP{gw: gw, local: local, port: pmpPort, timeout: timeout, key: key}
}

// nonce returns the mapping nonce for proto/internalPort from this host.
func (c *PCP) nonce(ianaProto uint8, internalPort uint16) [12]byte {
	h := sha256.New()
	h.Write(c.key)
	a := c.local.As16()
	h.Write(a[:])
	h.Write([]byte{ianaProto, byte(internalPort >> 8), byte(internalPort)})
	var n [12]byte
	copy(n[:], h.Sum(nil))
	return n
}

// pcpKeyFile is the PCP nonce key's name in StateDir.
const pcpKeyFile = "pcp-nonce.key"

// LoadPCPKey returns this host's PCP nonce key, creating it (32 random
// bytes, mode 0600) in StateDir on first use. When that is not writable it
// returns a key for this process only, and an error saying so.
func LoadPCPKey() ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	path := filepath.Join(StateDir(), pcpKeyFile)
	if b, err := os.ReadFile(path); err == nil && len(b) >= 16 {
		return b, nil
	}
	// Create it atomically: a complete temporary file, linked into place
	// only if no other natdoctor got there first.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
		if tmp, err := os.CreateTemp(filepath.Dir(path), ".pcp-key-*"); err == nil {
			_, werr := tmp.Write(fresh)
			cerr := tmp.Close()
			if werr == nil && cerr == nil {
				_ = os.Link(tmp.Name(), path)
			}
			os.Remove(tmp.Name())
			if b, err := os.ReadFile(path); err == nil && len(b) >= 16 {
				return b, nil
			}
		}
	}
	return fresh, fmt.Errorf("cannot write %s: PCP mappings of this run cannot be removed by a later one", path)
}

// Method returns MethodPCP.
func (c *PCP) Method() Method { return MethodPCP }

// header writes a request header into b.
func (c *PCP) header(b []byte, op uint8, lifetime uint32) {
	b[0] = pcpVersion
	b[1] = op
	binary.BigEndian.PutUint32(b[4:8], lifetime)
	client := netip.AddrFrom16(c.local.As16())
	if c.local.Is4() {
		client = netip.AddrFrom16(netip.AddrFrom4(c.local.As4()).As16()) // IPv4-mapped
	}
	a := client.As16()
	copy(b[8:24], a[:])
}

// exchange sends req until a matching response from the gateway's PCP port
// arrives, retransmitting with back-off, bounded by ctx and the timeout.
// Datagrams from any other address or port are ignored.
func (c *PCP) exchange(ctx context.Context, op string, req []byte, match func(pcpResponse) bool) (pcpResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, remaining(ctx, c.timeout))
	defer cancel()
	network := "udp4"
	if !c.local.Unmap().Is4() {
		network = "udp6" // PCP over IPv6: a MAP for this host's IPv6 address opens the router's firewall
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.local, 0)))
	if err != nil {
		return pcpResponse{}, fmt.Errorf("PCP %s: %w", op, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()

	server := netip.AddrPortFrom(c.gw, c.port)
	buf := make([]byte, pcpMaxMessage+4)
	wait := pcpInitialRetrans
	var lastErr error
	for {
		if _, err := conn.WriteToUDPAddrPort(req, server); err != nil {
			return pcpResponse{}, fmt.Errorf("PCP %s: %w", op, err)
		}
		resend := time.Now().Add(wait)
		if dl, ok := ctx.Deadline(); ok && dl.Before(resend) {
			resend = dl
		}
		_ = conn.SetReadDeadline(resend)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if expired(ctx) {
					if lastErr != nil {
						return pcpResponse{}, lastErr
					}
					if errors.Is(ctx.Err(), context.Canceled) {
						return pcpResponse{}, ctx.Err()
					}
					return pcpResponse{}, fmt.Errorf("PCP %s: %w (no reply from %s)", op, ErrNoResponse, server)
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // retransmit
				}
				return pcpResponse{}, fmt.Errorf("PCP %s: %w", op, err)
			}
			if from.Addr().Unmap() != c.gw || from.Port() != c.port {
				continue // not the gateway's PCP server
			}
			r, err := parsePCPResponse(buf[:n])
			if err != nil {
				if errors.Is(err, ErrPCPUnsupported) {
					return r, fmt.Errorf("PCP %s: %w", op, err)
				}
				lastErr = fmt.Errorf("PCP %s: %w", op, err)
				continue
			}
			if r.Result == PCPUnsuppVersion {
				return r, fmt.Errorf("PCP %s: %w", op, ErrPCPUnsupported)
			}
			if !match(r) {
				lastErr = fmt.Errorf("PCP %s: %w: response does not match the request (stale or foreign nonce)", op, ErrMalformed)
				continue
			}
			if r.Result != PCPSuccess {
				return r, &PCPError{Code: r.Result, Op: op, External: r.ExternalAddr}
			}
			return r, nil
		}
		if wait < pcpMaxRetrans {
			wait *= 2
		}
	}
}

// Announce sends an ANNOUNCE and returns the router's epoch.
func (c *PCP) Announce(ctx context.Context) (uint32, error) {
	req := make([]byte, pcpHeaderLen)
	c.header(req, pcpOpAnnounce, 0)
	r, err := c.exchange(ctx, "announce", req, func(r pcpResponse) bool { return r.Opcode == pcpOpAnnounce })
	return r.Epoch, err
}

// pcpOptPreferFailure is the PREFER_FAILURE option (RFC 6887 section
// 13.2): map the suggested external port or nothing. natdoctor treats
// another port as a failure anyway, and without the option miniupnpd
// 2.3.1 answers a port its policy refuses by searching the whole port
// space for another one, answering nothing (PCP, NAT-PMP or UPnP) for
// minutes: a roll-back cannot get through, and mappings stay behind.
const pcpOptPreferFailure = 2

// mapRequest sends a MAP request and returns the response. A request for
// a specific external port carries PREFER_FAILURE, unless the server
// says it does not know the option.
func (c *PCP) mapRequest(ctx context.Context, op string, proto Protocol, internalPort, externalPort uint16, lifetime uint32) (pcpResponse, error) {
	preferFailure := lifetime > 0 && externalPort != 0
	r, err := c.mapRequestOpt(ctx, op, proto, internalPort, externalPort, lifetime, preferFailure)
	var pe *PCPError
	if preferFailure && errors.As(err, &pe) && pe.Code == PCPUnsuppOption {
		return c.mapRequestOpt(ctx, op, proto, internalPort, externalPort, lifetime, false)
	}
	return r, err
}

func (c *PCP) mapRequestOpt(ctx context.Context, op string, proto Protocol, internalPort, externalPort uint16, lifetime uint32, preferFailure bool) (pcpResponse, error) {
	var ianaProto uint8 = ianaTCP
	if proto == UDP {
		ianaProto = ianaUDP
	}
	n := pcpHeaderLen + pcpMapPayloadLen
	if preferFailure {
		n += 4 // option code, reserved, length 0
	}
	req := make([]byte, n)
	if preferFailure {
		req[pcpHeaderLen+pcpMapPayloadLen] = pcpOptPreferFailure
	}
	c.header(req, pcpOpMap, lifetime)
	p := req[pcpHeaderLen:]
	nonce := c.nonce(ianaProto, internalPort)
	copy(p[0:12], nonce[:])
	p[12] = ianaProto
	binary.BigEndian.PutUint16(p[16:18], internalPort)
	binary.BigEndian.PutUint16(p[18:20], externalPort)
	zero := netip.IPv4Unspecified().As16() // no suggested external address
	zero[10], zero[11] = 0xff, 0xff
	if !c.local.Unmap().Is4() {
		zero = netip.IPv6Unspecified().As16()
	}
	copy(p[20:36], zero[:])
	return c.exchange(ctx, op, req, func(r pcpResponse) bool {
		return r.Opcode == pcpOpMap && r.Nonce == nonce && r.Protocol == ianaProto && r.InternalPort == internalPort
	})
}

// ExternalAddr is not offered by PCP without creating a mapping.
func (c *PCP) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	return netip.Addr{}, errors.New("PCP tells the external address only in a MAP response")
}

// Add maps req for this host. A mapping granted on another external port is
// returned together with a *PortMovedError.
func (c *PCP) Add(ctx context.Context, req Request) (Mapping, error) {
	if req.InternalAddr.IsValid() && req.InternalAddr != c.local {
		return Mapping{}, fmt.Errorf("PCP maps ports to the host that asks (%s), not %s", c.local, req.InternalAddr)
	}
	lease := req.Lease
	if lease <= 0 {
		lease = DefaultPMPLease
	}
	r, err := c.mapRequest(ctx, fmt.Sprintf("map %s %d", req.Protocol, req.ExternalPort), req.Protocol, req.InternalPort, req.ExternalPort, uint32(lease/time.Second))
	if err != nil {
		return Mapping{}, err
	}
	m := Mapping{
		Protocol: req.Protocol, ExternalPort: r.ExternalPort, InternalAddr: c.local, InternalPort: r.InternalPort,
		Lease: time.Duration(r.Lifetime) * time.Second, Enabled: true, ExternalAddr: r.ExternalAddr,
		Method: MethodPCP, Epoch: r.Epoch,
	}
	if r.ExternalPort != req.ExternalPort {
		return m, &PortMovedError{Requested: req.ExternalPort, Granted: r.ExternalPort, Protocol: req.Protocol, Method: MethodPCP}
	}
	return m, nil
}

// Delete removes this host's mapping of internalPort (lifetime 0).
func (c *PCP) Delete(ctx context.Context, proto Protocol, externalPort, internalPort uint16) error {
	_, err := c.mapRequest(ctx, fmt.Sprintf("unmap %s %d", proto, internalPort), proto, internalPort, 0, 0)
	return err
}
