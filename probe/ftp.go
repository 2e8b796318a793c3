package probe

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/check"
)

// Status is the outcome of one check: check.Outcome, which keeps "not
// checked" apart from "no".
type Status = check.Outcome

// Check outcomes.
const (
	OK      = check.OK
	Failed  = check.Failed
	Skipped = check.Skipped // not checked: say why in the evidence
	Error   = check.Error   // the check itself could not run
)

// Bounds on what an FTP server may send, and how long it may take.
const (
	DefaultReplyTimeout = 5 * time.Second
	DefaultDataTimeout  = 3 * time.Second
	// GreetingTimeout is how long a connection that was accepted may wait
	// for the 220: as long as real clients wait (FileZilla and lftp: 20 s).
	// A server that looks up each client's name in a DNS that does not
	// answer greets seconds late, and its users still get in.
	GreetingTimeout = 20 * time.Second
	// SlowGreeting is the delay from which a greeting is reported as late.
	SlowGreeting = 2 * time.Second
	// loginTimeout bounds the reply to PASS: servers delay a wrong
	// password on purpose (Pure-FTPd waits several seconds).
	loginTimeout     = 12 * time.Second
	sampleTimeout    = time.Second // one sampled passive port
	maxReplyBytes    = 64 << 10    // one reply, all its lines
	maxListingBytes  = 1 << 20     // a LIST is cut here
	maxKeptListLines = 20
	maxSamples       = 64
)

// PortRange is an inclusive range of ports.
type PortRange struct {
	Low  uint16 `json:"low"`
	High uint16 `json:"high"`
}

// Contains reports whether p is in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.Low && p <= r.High }

// Size returns the number of ports.
func (r PortRange) Size() int { return int(r.High) - int(r.Low) + 1 }

// String returns "42000-42010".
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Low, r.High) }

// ParsePortRange parses "42000-42010" or "42000:42010".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		lo, hi, ok = strings.Cut(s, ":")
	}
	if !ok {
		return PortRange{}, fmt.Errorf("passive range %q: want LOW-HIGH", s)
	}
	l, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	h, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil || l == 0 || h < l {
		return PortRange{}, fmt.Errorf("passive range %q: want LOW-HIGH with 1 <= LOW <= HIGH <= 65535", s)
	}
	return PortRange{uint16(l), uint16(h)}, nil
}

// FTPOptions configure the FTP checker.
type FTPOptions struct {
	User     string
	Password string // never recorded: commands show "PASS ****"
	// Anonymous logs in as "anonymous" when no user is given.
	Anonymous bool
	// Expected is the configured passive range, when known.
	Expected *PortRange
	// Samples is how many extra PASV commands sample the passive ports.
	Samples int
	// DialData opens a data connection; nil dials TCP directly.
	DialData func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
	// ReplyTimeout bounds each reply; DataTimeout each data connection;
	// GreetingTimeout the 220 (0: GreetingTimeout, never below ReplyTimeout).
	ReplyTimeout, DataTimeout, GreetingTimeout time.Duration
	// TLS says whether to use explicit FTPS; "" means TLSAuto.
	TLS TLSMode
}

// Exchange is one command and its reply, for the evidence.
type Exchange struct {
	Command string        `json:"command,omitempty"` // passwords redacted
	Code    int           `json:"code,omitempty"`
	Reply   []string      `json:"reply,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Error   string        `json:"error,omitempty"`
}

// Passive is what a PASV or EPSV reply said.
type Passive struct {
	Reply      string         `json:"reply"`
	Addr       netip.AddrPort `json:"address"`              // as advertised (EPSV: control address)
	AddrClass  string         `json:"address_class"`        // public, private, loopback, unspecified...
	Mismatch   bool           `json:"differs_from_control"` // advertised address is not the one dialled
	InRange    *bool          `json:"in_expected_range,omitempty"`
	ParseError string         `json:"parse_error,omitempty"`
}

// DataCheck is one data connection attempt.
type DataCheck struct {
	Addr      netip.AddrPort `json:"address"`
	Via       string         `json:"via"` // advertised, control, epsv, sample
	Status    Status         `json:"status"`
	Error     string         `json:"error,omitempty"`
	Connected bool           `json:"connected"` // the connection opened (a failure after it is no dead port)
	Listed    bool           `json:"listed"`    // LIST data arrived over it
	Bytes     int            `json:"bytes,omitempty"`
	Truncated bool           `json:"truncated,omitempty"`
	Elapsed   time.Duration  `json:"elapsed_ns"`
}

// FTPResult is what the FTP checker saw.
type FTPResult struct {
	Target      string     `json:"target"`
	ControlAddr netip.Addr `json:"control_address,omitzero"`

	Reached  Status `json:"reached"`
	ReachErr string `json:"reach_error,omitempty"`
	// GreetingDelay is how long the 220 took after the connection was open.
	GreetingDelay time.Duration `json:"greeting_delay_ns,omitempty"`
	Banner        []string      `json:"banner,omitempty"`
	Software      string        `json:"software,omitempty"`
	Features      []string      `json:"features,omitempty"`
	AuthTLS       Status        `json:"auth_tls"`      // ok: offered; failed: not offered
	TLS           *TLSInfo      `json:"tls,omitempty"` // when AUTH TLS was tried
	Login         Status        `json:"login"`
	LoginCode     int           `json:"login_code,omitempty"`
	LoginUser     string        `json:"login_user,omitempty"`
	LoginText     string        `json:"login_reply,omitempty"`

	// Home is the directory PWD named after login; Confined says whether
	// the session is kept inside it: failed means CWD reached a system
	// directory (RFC 959 CWD) outside it, the whole disk is browsable.
	Home      string      `json:"home,omitempty"`
	Confined  Status      `json:"confined,omitempty"`
	EscapedTo string      `json:"escaped_to,omitempty"`
	PASV      *Passive    `json:"pasv,omitempty"`
	EPSV      *Passive    `json:"epsv,omitempty"`
	Data      []DataCheck `json:"data"`
	List      Status      `json:"list"`
	Listing   []string    `json:"listing,omitempty"` // the first lines

	SampledPorts []uint16    `json:"sampled_ports,omitempty"`
	Samples      []DataCheck `json:"samples,omitempty"`

	Transcript []Exchange    `json:"transcript"`
	Elapsed    time.Duration `json:"elapsed_ns"`
}

// HandedOut returns every passive port the server handed out in this
// session (PASV, EPSV and the samples), sorted, once each.
func (r *FTPResult) HandedOut() []uint16 {
	seen := map[uint16]bool{}
	for _, p := range []*Passive{r.PASV, r.EPSV} {
		if p != nil && p.ParseError == "" && p.Addr.Port() != 0 {
			seen[p.Addr.Port()] = true
		}
	}
	for _, p := range r.SampledPorts {
		seen[p] = true
	}
	ports := make([]uint16, 0, len(seen))
	for p := range seen {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// Replies counts the passive replies (PASV, EPSV, samples) of the session.
func (r *FTPResult) Replies() int {
	n := len(r.SampledPorts)
	for _, p := range []*Passive{r.PASV, r.EPSV} {
		if p != nil && p.ParseError == "" {
			n++
		}
	}
	return n
}

// Range learning: a server without a range picks ports anywhere in
// 1024-65535, so MinLearnReplies replies that all fall within
// MaxLearnedSpan ports show that it has one (the chance of that by luck is
// below 10^-20), and their lowest and highest ports bound it from inside.
const (
	MinLearnReplies = 12
	MaxLearnedSpan  = 2048
)

// LearnRange returns the passive range the server's own replies show,
// when they show one (see MinLearnReplies).
func LearnRange(r *FTPResult) (PortRange, bool) {
	if r == nil || r.Replies() < MinLearnReplies {
		return PortRange{}, false
	}
	ports := r.HandedOut()
	lr := PortRange{Low: ports[0], High: ports[len(ports)-1]}
	return lr, lr.Size() <= MaxLearnedSpan
}

// DeadPorts returns the passive ports a data connection could not open to
// (a LIST refused over an open connection is no dead port, nor a dial the
// reflector refused to make: Error, not checked).
func (r *FTPResult) DeadPorts() []uint16 {
	var dead []uint16
	seen := map[uint16]bool{}
	for _, s := range append(append([]DataCheck{}, r.Data...), r.Samples...) {
		if s.Status == Failed && !s.Connected && !seen[s.Addr.Port()] && s.Via != "advertised" {
			seen[s.Addr.Port()] = true
			dead = append(dead, s.Addr.Port())
		}
	}
	return dead
}

// newFTPResult returns a result in which nothing was checked yet.
func newFTPResult(target string) *FTPResult {
	return &FTPResult{Target: target, AuthTLS: Skipped, Login: Skipped, List: Skipped, Confined: Skipped,
		Data: []DataCheck{}, Transcript: []Exchange{}}
}

// CheckFTP runs the FTP checker over conn, an open control connection to
// target. It closes conn. The result is never nil.
func CheckFTP(ctx context.Context, conn net.Conn, target string, opts FTPOptions) *FTPResult {
	start := time.Now()
	res := newFTPResult(target)
	defer func() { res.Elapsed = time.Since(start) }()
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		res.ControlAddr = a.AddrPort().Addr().Unmap()
	}
	opts = opts.withDefaults()
	budget := &budgetReader{r: conn, left: maxReplyBytes}
	c := &ftpConn{conn: conn, budget: budget, timeout: opts.ReplyTimeout, res: res,
		r: textproto.NewReader(bufio.NewReaderSize(budget, 4096)), w: textproto.NewWriter(bufio.NewWriter(conn))}

	if !c.greet(ctx, opts, start) {
		return res
	}
	c.feat(ctx)
	if opts.TLS == TLSRequire || (opts.TLS == TLSAuto && res.AuthTLS == OK) {
		if !c.startTLS(ctx, opts, serverName(target, res.ControlAddr)) {
			return res
		}
	}
	if !c.login(ctx, opts) {
		return res
	}
	if c.tlsConfig != nil {
		c.protectData(ctx)
	}
	c.confinement(ctx)
	c.list(ctx, opts)
	c.sample(ctx, opts)
	c.quit(ctx)
	return res
}

// withDefaults fills in the bounds and the dialer left unset.
func (opts FTPOptions) withDefaults() FTPOptions {
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = DefaultReplyTimeout
	}
	if opts.DataTimeout <= 0 {
		opts.DataTimeout = DefaultDataTimeout
	}
	if opts.GreetingTimeout <= 0 {
		opts.GreetingTimeout = GreetingTimeout
	}
	if opts.TLS == "" {
		opts.TLS = TLSAuto
	}
	if opts.DialData == nil {
		opts.DialData = func(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", a.String())
		}
	}
	return opts
}

// DialAndCheckFTP dials target (host:port) and runs the checker.
func DialAndCheckFTP(ctx context.Context, target string, opts FTPOptions) *FTPResult {
	timeout := opts.ReplyTimeout
	if timeout <= 0 {
		timeout = DefaultReplyTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", target)
	if err != nil {
		res := newFTPResult(target)
		res.Reached, res.ReachErr = Failed, describeNetErr(err)
		return res
	}
	return CheckFTP(ctx, conn, target, opts)
}
