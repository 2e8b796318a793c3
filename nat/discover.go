package nat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/natdoctor/natdoctor/check"
)

// Per-protocol bounds. A router on the LAN answers in milliseconds; these
// keep a silent router's verdict near one second, not minutes.
const (
	DefaultPMPTimeout  = 1200 * time.Millisecond
	DefaultUPnPTimeout = 1500 * time.Millisecond
	// DefaultHTTPTimeout bounds one UPnP HTTP request; discovery has its
	// own, shorter bound. A router busy with a long table (miniupnpd takes
	// about 0.5 s per add at 200 mappings) queues requests for a while.
	DefaultHTTPTimeout = 15 * time.Second
	// DefaultCallTimeout bounds one NAT-PMP or PCP mapping request, with
	// its retransmissions: a busy router may take a while to change its
	// rules.
	DefaultCallTimeout = 4 * time.Second
)

// Config says where the router is and how to talk to it.
type Config struct {
	// Gateway is the router. Zero means: discover it (DiscoverGateway).
	Gateway netip.Addr
	// standby is where the UPnP IGD answers when that is not the gateway
	// (set by discovery: a CARP pair answers from its own address).
	standby netip.Addr
	// Local is this host's address toward the gateway. Zero means: ask the
	// routing table (LocalAddrFor).
	Local netip.Addr
	// DiscoverGateway finds the gateway; nil uses DiscoverGateway.
	DiscoverGateway func() (netip.Addr, error)
	// PMPTimeout bounds NAT-PMP and PCP discovery; UPnPTimeout bounds SSDP
	// and the device description.
	PMPTimeout, UPnPTimeout time.Duration
	// PatientTimeout, when longer, is how long each protocol may wait while
	// none has answered yet; once one answers, the others keep their own
	// bound. It keeps a slow router (busy, or on a loaded machine) from
	// being called silent, at no cost when the router is prompt.
	PatientTimeout time.Duration
	// CallTimeout bounds each NAT-PMP/PCP request after discovery.
	CallTimeout time.Duration
	// SSDPPort is the gateway's SSDP port (1900 unless a test says otherwise).
	SSDPPort uint16
	// SSDPMulticast also sends M-SEARCH to 239.255.255.250 (off in unit tests).
	SSDPMulticast bool
	// HTTPClient talks to the UPnP device; nil uses NewHTTPClient.
	HTTPClient *http.Client
	// Trace, when set, receives protocol trace lines.
	Trace func(format string, args ...any)
	// CountRequest, when set, is called once per request sent to the router.
	CountRequest func()
	// PCPKey is the secret PCP mapping nonces derive from; nil loads it
	// with LoadPCPKey.
	PCPKey []byte
	// Skip lists protocols not to probe.
	Skip []Method
	// SkipUptime leaves out UPnP's GetStatusInfo (the router's uptime,
	// for display): one request less for commands that do not show it.
	SkipUptime bool
	// LocationCache, when set, is a file where the UPnP device's Location
	// is kept between runs (in natdoctor's state directory): a run tries
	// it before searching with SSDP.
	LocationCache string
	// ExternalAddrOnce leaves out UPnP's GetExternalIPAddress when NAT-PMP
	// has told the external address already (diagnose: one request less
	// to a busy router).
	ExternalAddrOnce bool
	// TrustCachedService uses the WAN connection service an earlier run
	// found behind this gateway (LocationCache, at most a day old) without
	// asking the router for its description: a request less for a caller
	// that sends one to the service anyway (diagnose's lookup), which
	// checks it. When that request finds nothing at the control URL (a
	// router restarted on another port), the service is searched for
	// again and the request sent once more. discover never trusts it.
	TrustCachedService bool
	// PCPUnlessPMP asks PCP only when NAT-PMP has not answered (within
	// pmpFirst): the two share the router's port 5351, and a router that
	// answers NAT-PMP does not need a PCP ANNOUNCE to be judged
	// (diagnose: one request less to a router that answers one at a
	// time). PCP is then reported skipped.
	PCPUnlessPMP bool
	// OnLister, when set, is given the UPnP client as soon as the service
	// is open, while Discover may still wait for its external address,
	// NAT-PMP and PCP: a caller can look mappings up meanwhile. It is called at most once,
	// from Discover's goroutine, and must return at once.
	OnLister func(Lister)
	// SkipExternalAddr leaves out UPnP's GetExternalIPAddress: a command
	// that only removes mappings needs the device, not its address.
	SkipExternalAddr bool
	// ListPage is the number of entries asked for per UPnP
	// GetListOfPortMappings request; 0 means 100. Pages halve, down to 25,
	// when a router fails one with an HTTP error.
	ListPage int
}

// DefaultConfig returns the configuration for a real network.
func DefaultConfig() Config {
	return Config{
		PMPTimeout:    DefaultPMPTimeout,
		UPnPTimeout:   DefaultUPnPTimeout,
		SSDPPort:      ssdpPort,
		SSDPMulticast: true,
	}
}

func (c *Config) tracef(format string, args ...any) {
	if c.Trace != nil {
		c.Trace(format, args...)
	}
}

// resolve fills in the gateway, local address and defaults.
func (c *Config) resolve() error {
	if c.PMPTimeout <= 0 {
		c.PMPTimeout = DefaultPMPTimeout
	}
	if c.UPnPTimeout <= 0 {
		c.UPnPTimeout = DefaultUPnPTimeout
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.SSDPPort == 0 {
		c.SSDPPort = ssdpPort
	}
	if c.HTTPClient == nil {
		c.HTTPClient = NewHTTPClient(DefaultHTTPTimeout)
	}
	if !c.Gateway.IsValid() {
		find := c.DiscoverGateway
		if find == nil {
			find = DiscoverGateway
		}
		gw, err := find()
		if err != nil {
			return err
		}
		c.Gateway = gw
		c.tracef("gateway %s (from the routing table)", gw)
	}
	if !c.Local.IsValid() {
		local, err := LocalAddrFor(c.Gateway)
		if err != nil {
			return err
		}
		c.Local = local
	}
	return nil
}

// upnpHost is the address the UPnP IGD's URLs must be on.
func (c *Config) upnpHost() netip.Addr {
	if c.standby.IsValid() {
		return c.standby
	}
	return c.Gateway
}

// ResolveAddrs fills in the gateway (from the routing table) and this
// host's address toward it, where not given. It sends nothing: a caller
// can start work that needs this host's address while Discover asks the
// router.
func (c *Config) ResolveAddrs() error {
	return c.resolve()
}

// Status is the outcome of probing one protocol, with its reason: ok,
// failed because nothing answered or the router said no, an error, or not
// checked (Outcome says which of check's outcomes it is).
type Status string

// Probe outcomes.
const (
	StatusOK          Status = "ok"          // the protocol answered
	StatusNoAnswer    Status = "no-answer"   // nothing came back in time
	StatusUnsupported Status = "unsupported" // the router said it does not speak it
	StatusError       Status = "error"       // it answered, but wrongly or with a refusal
	StatusSkipped     Status = "skipped"     // not checked
)

// Outcome is the check's outcome the status is a reason of.
func (s Status) Outcome() check.Outcome {
	switch s {
	case StatusOK:
		return check.OK
	case StatusNoAnswer, StatusUnsupported:
		return check.Failed
	case StatusError:
		return check.Error
	}
	return check.Skipped
}

// ProtocolResult is what one protocol's probe observed.
type ProtocolResult struct {
	Method       Method     `json:"method"`
	Status       Status     `json:"status"`
	Error        string     `json:"error,omitempty"`
	ExternalAddr netip.Addr `json:"external_address,omitzero"`
	Epoch        *uint32    `json:"epoch_seconds,omitempty"`
	// NoExternalAddr: the protocol answered, but the router has no usable
	// external address (WAN down, or a private/shared/reserved WAN address).
	NoExternalAddr bool          `json:"no_external_address,omitempty"`
	Uptime         time.Duration `json:"-"`
	Elapsed        time.Duration `json:"-"`
	// Cached: UPnP's service came from natdoctor's cache of an earlier
	// run, not from the router (Config.TrustCachedService); the first
	// request to it is what checks it.
	Cached bool `json:"cached,omitempty"`
	// UPnP only:
	Device  *DeviceInfo `json:"device,omitempty"`
	Ignored []string    `json:"ignored,omitempty"`
}

// Answered reports whether the protocol is usable.
func (r ProtocolResult) Answered() bool { return r.Status == StatusOK }

// Discovery is what the router said through each protocol.
type Discovery struct {
	Gateway   netip.Addr     `json:"gateway"`
	LocalAddr netip.Addr     `json:"local_address"`
	NATPMP    ProtocolResult `json:"natpmp"`
	PCP       ProtocolResult `json:"pcp"`
	UPnP      ProtocolResult `json:"upnp"`

	pmp  *PMP
	pcp  *PCP
	upnp *UPnP
}

// ExternalAddr returns the external address the router reported, UPnP first.
func (d *Discovery) ExternalAddr() netip.Addr {
	for _, r := range []ProtocolResult{d.UPnP, d.NATPMP, d.PCP} {
		if r.ExternalAddr.IsValid() {
			return r.ExternalAddr
		}
	}
	return netip.Addr{}
}

// NoExternalAddr reports whether a protocol answered but said the router
// has no usable external address.
func (d *Discovery) NoExternalAddr() bool {
	return d.NATPMP.NoExternalAddr || d.PCP.NoExternalAddr || d.UPnP.NoExternalAddr
}

// Any reports whether any port-mapping protocol answered.
func (d *Discovery) Any() bool {
	return d.NATPMP.Answered() || d.PCP.Answered() || d.UPnP.Answered()
}

// statusOf classifies a probe error.
func statusOf(err error) Status {
	switch {
	case err == nil, errors.Is(err, ErrNoExternalAddr):
		return StatusOK
	case errors.Is(err, ErrNoResponse), errors.Is(err, context.DeadlineExceeded):
		return StatusNoAnswer
	case errors.Is(err, ErrPCPUnsupported):
		return StatusUnsupported
	}
	var pe *PMPError
	if errors.As(err, &pe) && pe.Code == PMPUnsupportedVersion {
		return StatusUnsupported
	}
	return StatusError
}

// pmpFirst is how long PCP waits for NAT-PMP's answer with PCPUnlessPMP:
// a busy miniupnpd took 130 ms. A PCP-only router refuses NAT-PMP's version
// at once; on a silent one PCP's own bound, which runs from the start,
// does not grow.
const pmpFirst = 500 * time.Millisecond

// Discover probes NAT-PMP, PCP and UPnP IGD on the gateway in parallel and
// returns when each has answered or its bound has expired.
func Discover(ctx context.Context, cfg Config) (*Discovery, error) {
	if err := cfg.resolve(); err != nil {
		return nil, err
	}
	p := &prober{ctx: ctx, cfg: cfg, start: time.Now(), skip: map[Method]bool{},
		answered: make(chan struct{}), pmpDone: make(chan struct{})}
	p.d = &Discovery{
		Gateway: cfg.Gateway, LocalAddr: cfg.Local,
		NATPMP: ProtocolResult{Method: MethodNATPMP, Status: StatusSkipped},
		PCP:    ProtocolResult{Method: MethodPCP, Status: StatusSkipped},
		UPnP:   ProtocolResult{Method: MethodUPnP, Status: StatusSkipped},
	}
	for _, m := range cfg.Skip {
		p.skip[m] = true
	}
	var wg sync.WaitGroup
	if p.skip[MethodNATPMP] {
		close(p.pmpDone)
	} else {
		wg.Go(p.natpmp)
	}
	if !p.skip[MethodPCP] {
		wg.Go(p.pcp)
	}
	if !p.skip[MethodUPnP] {
		wg.Go(p.upnp)
	}
	wg.Wait()
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return p.d, ctx.Err()
	}
	return p.d, nil
}

// prober is one Discover: the three protocols probed at once, each
// filling its own part of d.
type prober struct {
	ctx        context.Context
	cfg        Config
	d          *Discovery
	start      time.Time
	skip       map[Method]bool
	answered   chan struct{} // closed when a protocol first answers
	answerOnce sync.Once
	pmpDone    chan struct{} // closed once d.NATPMP is final
}

func (p *prober) markAnswered() { p.answerOnce.Do(func() { close(p.answered) }) }

// bound returns the context one protocol's discovery runs in: its own
// bound, or, while no protocol has answered, the patient one.
func (p *prober) bound(own time.Duration) (context.Context, context.CancelFunc) {
	if p.cfg.PatientTimeout <= own {
		return context.WithTimeout(p.ctx, own)
	}
	c, cancel := context.WithTimeout(p.ctx, p.cfg.PatientTimeout)
	go func() {
		select {
		case <-p.answered: // another protocol answered: its own bound from now
			// (a router slow to answer one protocol is slow for all)
			t := time.NewTimer(own)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-c.Done():
			}
		case <-c.Done():
		}
	}()
	return c, cancel
}

// cut turns the end of a protocol's own bound, cut short because another
// protocol answered, into a missing answer; the caller's own cancellation
// stays what it is.
func (p *prober) cut(what string, own time.Duration, err error) error {
	if err != nil && p.ctx.Err() == nil && (errors.Is(err, context.Canceled) || strings.Contains(err.Error(), context.Canceled.Error())) {
		return fmt.Errorf("%s: %w (nothing within %v of another protocol's answer)", what, ErrNoResponse, own)
	}
	return err
}

// natpmp asks NAT-PMP for the external address and epoch.
func (p *prober) natpmp() {
	defer close(p.pmpDone)
	ctx, cancel := p.bound(p.cfg.PMPTimeout)
	defer cancel()
	c := NewPMP(p.cfg.Gateway, p.cfg.Local, max(p.cfg.CallTimeout, p.cfg.PatientTimeout)) // discovery is bounded by ctx
	addr, epoch, err := c.ExternalAddrEpoch(ctx)
	err = p.cut("NAT-PMP", p.cfg.PMPTimeout, err)
	p.d.NATPMP.Elapsed = time.Since(p.start)
	p.d.NATPMP.Status = statusOf(err)
	if errors.Is(err, ErrNoExternalAddr) {
		p.d.NATPMP.NoExternalAddr, p.d.pmp = true, c
	}
	if err != nil {
		p.d.NATPMP.Error = err.Error()
		p.cfg.tracef("NAT-PMP: %v", err)
		return
	}
	p.markAnswered()
	p.cfg.tracef("NAT-PMP: external address %s, epoch %ds (%v)", addr, epoch, p.d.NATPMP.Elapsed.Round(time.Millisecond))
	p.d.NATPMP.ExternalAddr, p.d.NATPMP.Epoch, p.d.pmp = addr, &epoch, c
}

// pcp sends PCP's ANNOUNCE (not when NAT-PMP answered, with PCPUnlessPMP).
func (p *prober) pcp() {
	ctx, cancel := p.bound(p.cfg.PMPTimeout)
	defer cancel()
	if p.cfg.PCPUnlessPMP && !p.skip[MethodNATPMP] {
		t := time.NewTimer(pmpFirst)
		select {
		case <-p.pmpDone:
			if p.d.NATPMP.Answered() {
				t.Stop()
				p.d.PCP.Error = "not asked: NAT-PMP answered"
				p.cfg.tracef("PCP: not asked, NAT-PMP answered")
				return
			}
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	key := p.cfg.PCPKey
	if key == nil {
		var kerr error
		if key, kerr = LoadPCPKey(); kerr != nil {
			p.cfg.tracef("PCP: %v", kerr)
		}
	}
	c := NewPCP(p.cfg.Gateway, p.cfg.Local, max(p.cfg.CallTimeout, p.cfg.PatientTimeout), key) // discovery is bounded by ctx
	epoch, err := c.Announce(ctx)
	err = p.cut("PCP", p.cfg.PMPTimeout, err)
	p.d.PCP.Elapsed = time.Since(p.start)
	p.d.PCP.Status = statusOf(err)
	if errors.Is(err, ErrNoExternalAddr) {
		// NETWORK_FAILURE: the router answered and has no usable
		// external address, as NAT-PMP's result 3 says.
		p.d.PCP.NoExternalAddr, p.d.pcp = true, c
	}
	if err != nil {
		p.d.PCP.Error = err.Error()
		p.cfg.tracef("PCP: %v", err)
		return
	}
	p.markAnswered()
	p.cfg.tracef("PCP: ANNOUNCE answered, epoch %ds (%v)", epoch, p.d.PCP.Elapsed.Round(time.Millisecond))
	p.d.PCP.Epoch, p.d.pcp = &epoch, c
}

// upnp opens the UPnP IGD service and, unless NAT-PMP told it, asks its
// external address.
func (p *prober) upnp() {
	ctx, cancel := p.bound(p.cfg.UPnPTimeout)
	defer cancel()
	u, ignored, err := openUPnP(ctx, &p.cfg, p.answered)
	p.d.UPnP.Ignored = ignored
	if err == nil && p.cfg.OnLister != nil {
		p.cfg.OnLister(u) // the caller's lookup need not wait for the rest
	}
	if err == nil && !p.cfg.SkipExternalAddr && p.cfg.ExternalAddrOnce {
		// Wait for NAT-PMP's answer rather than send a SOAP
		// request to a busy router: Discover waits for NAT-PMP's
		// bound anyway.
		t := time.NewTimer(p.cfg.PMPTimeout)
		select {
		case <-p.pmpDone:
			p.cfg.SkipExternalAddr = p.d.NATPMP.ExternalAddr.IsValid()
		case <-t.C:
		}
		t.Stop()
	}
	if err == nil && p.cfg.SkipExternalAddr {
		dev := u.Device
		p.d.UPnP.Device = &dev
	} else if err == nil {
		var addr netip.Addr
		addr, err = u.ExternalAddr(ctx)
		p.d.UPnP.ExternalAddr = addr
		if errors.Is(err, ErrNoExternalAddr) {
			p.d.UPnP.NoExternalAddr, p.d.upnp = true, u
		}
		if (err == nil || errors.Is(err, ErrNoExternalAddr)) && !p.cfg.SkipUptime {
			if _, up, serr := u.Status(ctx); serr == nil {
				p.d.UPnP.Uptime = up
			}
		}
		dev := u.Device
		p.d.UPnP.Device = &dev
	}
	err = p.cut("UPnP", p.cfg.UPnPTimeout, err)
	p.d.UPnP.Elapsed = time.Since(p.start)
	p.d.UPnP.Status = statusOf(err)
	if err != nil {
		p.d.UPnP.Error = err.Error()
		p.cfg.tracef("UPnP: %v", err)
		return
	}
	p.markAnswered()
	ext := "not asked"
	if p.d.UPnP.ExternalAddr.IsValid() {
		ext = p.d.UPnP.ExternalAddr.String()
	}
	p.cfg.tracef("UPnP: %s %s (IGD v%d, %s) external address %s (%v)", u.Device.Manufacturer, u.Device.ModelName,
		u.Device.IGDVersion, u.Device.ServiceType, ext, p.d.UPnP.Elapsed.Round(time.Millisecond))
	p.d.upnp, p.d.UPnP.Cached = u, u.FromCache()
}

// ErrNoMappingProtocol means the router answered none of NAT-PMP, PCP and UPnP.
var ErrNoMappingProtocol = errors.New("the router answers none of NAT-PMP, PCP and UPnP IGD")

// Lister returns the UPnP client, the only protocol that can list.
func (d *Discovery) Lister() (Lister, error) {
	if d.upnp == nil {
		if d.NATPMP.Answered() || d.PCP.Answered() {
			return nil, fmt.Errorf("%w; the router speaks no UPnP IGD: %s", ErrCannotList, d.UPnP.Error)
		}
		return nil, ErrNoMappingProtocol
	}
	return d.upnp, nil
}

// Router returns a client for via ("" or "auto" picks). Auto prefers UPnP
// (it can list, label mappings, map for another host and report a conflict
// by name), then PCP, then NAT-PMP.
func (d *Discovery) Router(via Method) (Router, error) {
	if via == "" || via == "auto" {
		for _, p := range Protocols {
			if r, _ := d.router(p.Method); r != nil {
				return r, nil
			}
		}
		return nil, ErrNoMappingProtocol
	}
	info, ok := via.Info()
	if !ok {
		return nil, fmt.Errorf("unknown protocol %q (want %s)", via, strings.Join(ViaChoices(), ", "))
	}
	r, res := d.router(via)
	if r == nil {
		return nil, fmt.Errorf("%s is not available on %s: %s", info.Name, d.Gateway, res.Error)
	}
	return r, nil
}

// router returns the usable client of one protocol, if any, and its result.
func (d *Discovery) router(m Method) (Router, ProtocolResult) {
	switch m {
	case MethodUPnP:
		if d.upnp != nil {
			return d.upnp, d.UPnP
		}
		return nil, d.UPnP
	case MethodPCP:
		if d.pcp != nil {
			return d.pcp, d.PCP
		}
		return nil, d.PCP
	case MethodNATPMP:
		if d.pmp != nil {
			return d.pmp, d.NATPMP
		}
		return nil, d.NATPMP
	}
	return nil, ProtocolResult{}
}
