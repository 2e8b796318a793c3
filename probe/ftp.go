package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/ipclass"
	"github.com/natdoctor/natdoctor/reflector"
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
// (a LIST refused over an open connection is no dead port).
func (r *FTPResult) DeadPorts() []uint16 {
	var dead []uint16
	seen := map[uint16]bool{}
	for _, s := range append(append([]DataCheck{}, r.Data...), r.Samples...) {
		if s.Status != OK && s.Status != Skipped && !s.Connected && !seen[s.Addr.Port()] && s.Via != "advertised" {
			seen[s.Addr.Port()] = true
			dead = append(dead, s.Addr.Port())
		}
	}
	return dead
}

// ftpConn is one control connection.
type ftpConn struct {
	conn    net.Conn
	r       *textproto.Reader
	w       *textproto.Writer
	budget  *budgetReader
	timeout time.Duration
	res     *FTPResult
	// tlsConfig is set once AUTH TLS succeeded; dataTLS once PROT P did.
	tlsConfig *tls.Config
	dataTLS   bool
}

// budgetReader fails once more than left bytes were read: an endless line
// or reply cannot bloat natdoctor.
type budgetReader struct {
	r    io.Reader
	left int
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("reply longer than %d bytes", maxReplyBytes)
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= n
	return n, err
}

// reply reads one reply and records it.
func (c *ftpConn) reply(ctx context.Context, cmd string, start time.Time) (int, []string, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err // a new deadline would undo the one cancelling set
	}
	c.budget.left = maxReplyBytes
	dl := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = c.conn.SetReadDeadline(dl)
	code, msg, err := c.r.ReadResponse(0)
	ex := Exchange{Command: cmd, Code: code, Elapsed: time.Since(start)}
	if msg != "" || code != 0 {
		lines := strings.Split(msg, "\n")
		lines[0] = fmt.Sprintf("%d %s", code, lines[0])
		ex.Reply = lines
	}
	if err != nil {
		ex.Error = err.Error()
	}
	c.res.Transcript = append(c.res.Transcript, ex)
	return code, ex.Reply, err
}

// notFTP waits for the greeting's first bytes and, when they are not an
// FTP reply code ("SSH-2.0-..."), returns its first line and false: such a
// line would read as the start of a multi-line reply that never ends.
func (c *ftpConn) notFTP(ctx context.Context) (string, bool) {
	dl := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = c.conn.SetReadDeadline(dl)
	b, err := c.r.R.Peek(4)
	if err != nil || b[0] >= '0' && b[0] <= '9' && b[1] >= '0' && b[1] <= '9' && b[2] >= '0' && b[2] <= '9' {
		return "", true // a reply code, or nothing yet: reply() says which
	}
	line, _ := c.r.R.Peek(min(c.r.R.Buffered(), 80))
	first, _, _ := strings.Cut(string(line), "\n")
	return strings.TrimSpace(first), false
}

// cmd sends a command and reads its reply. shown is what the transcript
// records (passwords redacted).
func (c *ftpConn) cmd(ctx context.Context, shown, format string, args ...any) (int, []string, error) {
	start := time.Now()
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.w.PrintfLine(format, args...); err != nil {
		c.res.Transcript = append(c.res.Transcript, Exchange{Command: shown, Error: err.Error()})
		return 0, nil, err
	}
	return c.reply(ctx, shown, start)
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
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = DefaultReplyTimeout
	}
	if opts.DataTimeout <= 0 {
		opts.DataTimeout = DefaultDataTimeout
	}
	if opts.DialData == nil {
		opts.DialData = func(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", a.String())
		}
	}
	budget := &budgetReader{r: conn, left: maxReplyBytes}
	c := &ftpConn{conn: conn, budget: budget, timeout: opts.ReplyTimeout, res: res,
		r: textproto.NewReader(bufio.NewReaderSize(budget, 4096)), w: textproto.NewWriter(bufio.NewWriter(conn))}

	greeting := opts.GreetingTimeout
	if greeting <= 0 {
		greeting = GreetingTimeout
	}
	c.timeout = max(opts.ReplyTimeout, greeting)
	if line, ok := c.notFTP(ctx); !ok {
		res.Reached, res.ReachErr = Failed, fmt.Sprintf("not an FTP server: it greets with %q", line)
		res.GreetingDelay = time.Since(start)
		return res
	}
	code, banner, err := c.reply(ctx, "", start)
	c.timeout = opts.ReplyTimeout
	res.Banner = banner
	res.GreetingDelay = time.Since(start)
	var ne net.Error
	switch {
	case err != nil && code == 0 && !errors.As(err, new(*reflector.RelayError)) && errors.As(err, &ne) && ne.Timeout():
		// The connection is open: something accepted it. It was not dropped.
		res.Reached = Failed
		res.ReachErr = fmt.Sprintf("the connection was accepted, but no FTP greeting came within %v", res.GreetingDelay.Round(100*time.Millisecond))
		return res
	case err != nil && code == 0:
		res.Reached, res.ReachErr = Failed, describeNetErr(err)
		if res.ReachErr == "" {
			res.ReachErr = "no FTP greeting: " + err.Error()
		}
		return res
	case code != 220:
		res.Reached, res.ReachErr = Failed, fmt.Sprintf("greeting %d instead of 220 (server busy or refusing)", code)
		return res
	}
	res.Reached = OK
	res.Software = guessSoftware(banner)

	if code, feat, err := c.cmd(ctx, "FEAT", "FEAT"); err == nil && code == 211 {
		// The lines between "211-Extensions" and "211 End" (whose code
		// textproto has already cut off).
		lines := feat[1:]
		if len(lines) > 0 {
			lines = lines[:len(lines)-1]
		}
		for _, l := range lines {
			if f := strings.TrimSpace(l); f != "" && !strings.HasPrefix(f, "211") {
				res.Features = append(res.Features, f)
			}
		}
		res.AuthTLS = Failed
		for _, f := range res.Features {
			if strings.EqualFold(f, "AUTH TLS") || strings.HasPrefix(strings.ToUpper(f), "AUTH TLS") || strings.EqualFold(f, "AUTH SSL") {
				res.AuthTLS = OK
			}
		}
	}
	if res.Software == "" {
		res.Software = guessSoftware(res.Features)
	}

	mode := opts.TLS
	if mode == "" {
		mode = TLSAuto
	}
	if mode == TLSRequire || (mode == TLSAuto && res.AuthTLS == OK) {
		if !c.startTLS(ctx, opts, serverName(target, res.ControlAddr)) {
			return res
		}
	}

	user, pass := opts.User, opts.Password
	if user == "" && opts.Anonymous {
		user, pass = "anonymous", "natdoctor@"
	}
	if user == "" {
		c.quit(ctx)
		return res
	}
	res.LoginUser = user
	code, rep, err := c.cmd(ctx, "USER "+user, "USER %s", user)
	if err == nil && code == 331 {
		c.timeout = max(opts.ReplyTimeout, loginTimeout)
		code, rep, err = c.cmd(ctx, "PASS ****", "PASS %s", pass)
		c.timeout = opts.ReplyTimeout
	}
	res.LoginCode = code
	if len(rep) > 0 {
		res.LoginText = rep[len(rep)-1]
	}
	if err != nil && code == 0 {
		res.Login, res.LoginText = Error, "connection lost during login: "+describeNetErr(err)
		return res
	}
	if code != 230 {
		res.Login = Failed
		c.quit(ctx)
		return res
	}
	res.Login = OK
	if c.tlsConfig != nil {
		c.protectData(ctx)
	}
	c.confinement(ctx)

	// PASV, then a data connection to the advertised address with LIST.
	res.PASV = c.pasv(ctx, opts)
	if res.PASV != nil && res.PASV.ParseError == "" {
		dc := c.dataList(ctx, opts, res.PASV.Addr, "advertised")
		res.Data = append(res.Data, dc)
		if res.PASV.Addr.Addr() != res.ControlAddr && res.ControlAddr.IsValid() {
			// What a lenient client does: the same port on the address it dialled.
			if p := c.pasv(ctx, opts); p != nil && p.ParseError == "" {
				res.Data = append(res.Data, c.dataList(ctx, opts, netip.AddrPortFrom(res.ControlAddr, p.Addr.Port()), "control"))
			}
		}
	}
	// EPSV (RFC 2428): the port only, on the control address.
	if res.EPSV = c.epsv(ctx, opts, res.ControlAddr); res.EPSV != nil && res.EPSV.ParseError == "" {
		res.Data = append(res.Data, c.dataList(ctx, opts, res.EPSV.Addr, "epsv"))
	}
	res.List = Failed
	for _, d := range res.Data {
		if d.Listed {
			res.List = OK
		}
	}
	c.sample(ctx, opts)
	c.quit(ctx)
	return res
}

func (c *ftpConn) quit(ctx context.Context) {
	_, _, _ = c.cmd(ctx, "QUIT", "QUIT")
}

// pasv sends PASV and parses the 227 reply.
func (c *ftpConn) pasv(ctx context.Context, opts FTPOptions) *Passive {
	code, rep, err := c.cmd(ctx, "PASV", "PASV")
	p := &Passive{}
	if len(rep) > 0 {
		p.Reply = rep[0]
	}
	if err != nil || code != 227 {
		p.ParseError = fmt.Sprintf("PASV answered %d: %s", code, strings.Join(rep, " "))
		return p
	}
	addr, perr := ParsePASV(p.Reply)
	if perr != nil {
		p.ParseError = perr.Error()
		return p
	}
	p.Addr = addr
	p.AddrClass = classify(addr.Addr())
	p.Mismatch = c.res.ControlAddr.IsValid() && addr.Addr() != c.res.ControlAddr
	if opts.Expected != nil {
		in := opts.Expected.Contains(addr.Port())
		p.InRange = &in
	}
	return p
}

// epsv sends EPSV and parses the 229 reply.
func (c *ftpConn) epsv(ctx context.Context, opts FTPOptions, control netip.Addr) *Passive {
	code, rep, err := c.cmd(ctx, "EPSV", "EPSV")
	p := &Passive{}
	if len(rep) > 0 {
		p.Reply = rep[0]
	}
	if err != nil || code != 229 {
		p.ParseError = fmt.Sprintf("EPSV answered %d: %s", code, strings.Join(rep, " "))
		return p
	}
	port, perr := ParseEPSV(p.Reply)
	if perr != nil {
		p.ParseError = perr.Error()
		return p
	}
	p.Addr = netip.AddrPortFrom(control, port)
	p.AddrClass = classify(control)
	if opts.Expected != nil {
		in := opts.Expected.Contains(port)
		p.InRange = &in
	}
	return p
}

// dataList opens a data connection to addr, sends LIST and reads it.
func (c *ftpConn) dataList(ctx context.Context, opts FTPOptions, addr netip.AddrPort, via string) DataCheck {
	start := time.Now()
	dc := DataCheck{Addr: addr, Via: via}
	dctx, cancel := context.WithTimeout(ctx, opts.DataTimeout)
	defer cancel()
	data, err := opts.DialData(dctx, addr)
	if err != nil {
		dc.Status, dc.Error, dc.Elapsed = Failed, describeNetErr(err), time.Since(start)
		return dc
	}
	dc.Connected = true
	defer func() { data.Close() }() // the TLS connection, once there is one
	code, _, err := c.cmd(ctx, "LIST", "LIST")
	if err != nil || (code != 150 && code != 125) {
		dc.Status, dc.Error, dc.Elapsed = Failed, fmt.Sprintf("LIST answered %d", code), time.Since(start)
		return dc
	}
	if c.dataTLS {
		tc, err := c.secureData(ctx, data, opts.DataTimeout)
		if err != nil {
			data.Close()
			_, _, _ = c.reply(ctx, "", time.Now()) // the server's 425 or 426
			dc.Status, dc.Error, dc.Elapsed = Failed, err.Error(), time.Since(start)
			return dc
		}
		data = tc
	}
	_ = data.SetReadDeadline(time.Now().Add(c.timeout))
	body, err := io.ReadAll(io.LimitReader(data, maxListingBytes+1))
	dc.Bytes = len(body)
	if len(body) > maxListingBytes {
		dc.Truncated, dc.Bytes = true, maxListingBytes
		body = body[:maxListingBytes]
		data.Close() // stop the transfer; the server reports 426
	}
	if err != nil && !dc.Truncated {
		dc.Status, dc.Error = Failed, "listing cut off: "+describeNetErr(err)
	}
	// Close before the final reply: over TLS, Pure-FTPd waits for the
	// client's close_notify before it sends 226.
	data.Close()
	code, _, rerr := c.reply(ctx, "", time.Now())
	if dc.Status == "" {
		if rerr == nil && (code == 226 || code == 250 || (dc.Truncated && code == 426)) {
			dc.Status, dc.Listed = OK, true
		} else {
			dc.Status, dc.Error = Failed, fmt.Sprintf("transfer ended with %d", code)
		}
	}
	if dc.Listed && len(c.res.Listing) == 0 {
		for _, l := range strings.Split(strings.TrimRight(string(body), "\r\n"), "\n") {
			if len(c.res.Listing) >= maxKeptListLines {
				break
			}
			if l = strings.TrimRight(l, "\r"); l != "" {
				c.res.Listing = append(c.res.Listing, l)
			}
		}
	}
	dc.Elapsed = time.Since(start)
	return dc
}

// sample sends PASV up to opts.Samples times and, while each port
// listens, dials it on the control address (what a lenient client uses).
// A port that connects carries data; one that is refused reached something
// other than the listening server (the router, another host); one that
// times out was dropped. Each distinct port is dialled once.
func (c *ftpConn) sample(ctx context.Context, opts FTPOptions) {
	n := min(opts.Samples, maxSamples)
	tried := map[uint16]bool{}
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return
		}
		p := c.pasv(ctx, opts)
		if p == nil || p.ParseError != "" {
			return
		}
		port := p.Addr.Port()
		c.res.SampledPorts = append(c.res.SampledPorts, port)
		if tried[port] {
			continue
		}
		tried[port] = true
		addr := netip.AddrPortFrom(c.res.ControlAddr, port)
		if !c.res.ControlAddr.IsValid() {
			addr = p.Addr
		}
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, min(opts.DataTimeout, sampleTimeout))
		conn, err := opts.DialData(dctx, addr)
		cancel()
		dc := DataCheck{Addr: addr, Via: "sample", Elapsed: time.Since(start), Status: OK}
		if err != nil {
			dc.Status, dc.Error = Failed, describeNetErr(err)
			if strings.Contains(err.Error(), "connection refused") {
				dc.Error = "refused while the server listened on it: the port leads to another host or the router"
			}
		} else {
			dc.Connected = true
			conn.Close()
		}
		c.res.Samples = append(c.res.Samples, dc)
	}
}

// ParsePASV parses a 227 reply: "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)".
// The parentheses are optional, as some servers omit them.
func ParsePASV(reply string) (netip.AddrPort, error) {
	s := reply
	if i := strings.IndexByte(s, '('); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, ')'); j >= 0 {
			s = s[:j]
		}
	} else {
		// Find the first run of digits and commas after the code.
		if len(s) > 4 {
			s = s[4:]
		}
		i := strings.IndexAny(s, "0123456789")
		if i < 0 {
			return netip.AddrPort{}, fmt.Errorf("227 reply without an address: %q", reply)
		}
		s = s[i:]
		if j := strings.IndexFunc(s, func(r rune) bool { return r != ',' && (r < '0' || r > '9') }); j >= 0 {
			s = s[:j]
		}
	}
	parts := strings.Split(s, ",")
	if len(parts) != 6 {
		return netip.AddrPort{}, fmt.Errorf("227 reply %q: want six numbers", reply)
	}
	var b [6]byte
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 || n > 255 {
			return netip.AddrPort{}, fmt.Errorf("227 reply %q: %q is not a byte", reply, p)
		}
		b[i] = byte(n)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]}), uint16(b[4])<<8|uint16(b[5])), nil
}

// ParseEPSV parses a 229 reply: "229 Entering Extended Passive Mode (|||port|)".
func ParseEPSV(reply string) (uint16, error) {
	i := strings.IndexByte(reply, '(')
	j := strings.LastIndexByte(reply, ')')
	if i < 0 || j < i+5 {
		return 0, fmt.Errorf("229 reply %q: no (|||port|)", reply)
	}
	in := reply[i+1 : j]
	d := in[0]
	if d < 33 || d > 126 {
		return 0, fmt.Errorf("229 reply %q: bad delimiter", reply)
	}
	f := strings.Split(in, string(d))
	if len(f) != 5 || f[1] != "" || f[2] != "" || f[4] != "" {
		return 0, fmt.Errorf("229 reply %q: want (|||port|)", reply)
	}
	n, err := strconv.Atoi(f[3])
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("229 reply %q: bad port", reply)
	}
	return uint16(n), nil
}

// guessSoftware names the server software from a banner or FEAT lines.
func guessSoftware(lines []string) string {
	all := strings.ToLower(strings.Join(lines, "\n"))
	for _, s := range []struct{ key, name string }{
		{"pure-ftpd", "Pure-FTPd"}, {"vsftpd", "vsftpd"}, {"proftpd", "ProFTPD"}, {"filezilla", "FileZilla Server"},
		{"microsoft ftp", "Microsoft FTP Service"}, {"serv-u", "Serv-U"}, {"wu-", "wu-ftpd"}, {"pyftpdlib", "pyftpdlib"},
	} {
		if strings.Contains(all, s.key) {
			return s.name
		}
	}
	// Pure-FTPd's FEAT list is distinctive even when its banner is customised.
	if strings.Contains(all, "esta") && strings.Contains(all, "estp") {
		return "Pure-FTPd"
	}
	return ""
}

// describeNetErr turns a dial or read error into plain words.
func describeNetErr(err error) string {
	if err == nil {
		return ""
	}
	var ne net.Error
	var re *reflector.RelayError
	switch {
	case errors.As(err, &re) && re.Reason == "timeout":
		return "timed out from outside (dropped: nothing answered)"
	case errors.As(err, &re) && re.Reason == "refused":
		return "refused from outside (a host answered, nothing listens there)"
	case errors.As(err, &re):
		return err.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out (dropped: nothing answered)"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused (a host answered, nothing listens there)"
	case strings.Contains(err.Error(), "connection reset"):
		return "reset by peer"
	case errors.Is(err, io.EOF):
		return "closed by the server"
	case strings.Contains(err.Error(), "no route to host"), strings.Contains(err.Error(), "network is unreachable"):
		return "unreachable (no route)"
	}
	return err.Error()
}

// classify names the kind of address a server advertises.
func classify(a netip.Addr) string { return string(ipclass.Of(a)) }

// systemDirs are directories every Unix-like system (and macOS) has: a
// session that can change into one is not confined to its home.
var systemDirs = []string{"/etc", "/usr"}

// confinement records the home directory and whether the session can
// leave it for a system directory (no chroot, "default root"). It
// returns to the home directory afterwards.
func (c *ftpConn) confinement(ctx context.Context) {
	code, rep, err := c.cmd(ctx, "PWD", "PWD")
	if err != nil || code != 257 || len(rep) == 0 {
		return
	}
	home, ok := parsePWD(rep[0])
	if !ok {
		return
	}
	c.res.Home, c.res.Confined = home, OK
	for _, dir := range systemDirs {
		if home == dir || strings.HasPrefix(home, dir+"/") {
			continue
		}
		code, _, err := c.cmd(ctx, "CWD "+dir, "CWD %s", dir)
		if err != nil {
			c.res.Confined = Error
			return
		}
		if code == 250 {
			c.res.Confined, c.res.EscapedTo = Failed, dir
			c.cmd(ctx, "CWD "+home, "CWD %s", home)
			return
		}
	}
}

// parsePWD returns the quoted path of a 257 reply ("" inside doubled).
func parsePWD(line string) (string, bool) {
	i := strings.IndexByte(line, '"')
	if i < 0 {
		return "", false
	}
	var b strings.Builder
	for j := i + 1; j < len(line); j++ {
		if line[j] != '"' {
			b.WriteByte(line[j])
			continue
		}
		if j+1 < len(line) && line[j+1] == '"' {
			b.WriteByte('"')
			j++
			continue
		}
		return b.String(), b.Len() > 0
	}
	return "", false
}

// serverName is the name a server's certificate should carry: the host
// the target names, else the address dialled.
func serverName(target string, control netip.Addr) string {
	t, _, _ := strings.Cut(target, " ")
	if h, _, err := net.SplitHostPort(t); err == nil && h != "" {
		return h
	}
	return control.String()
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
