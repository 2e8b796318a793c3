package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/reflector"
)

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

// greet waits for the 220, as long as clients wait, and tells a server
// that is slow, busy or no FTP server apart from one that does not answer.
func (c *ftpConn) greet(ctx context.Context, opts FTPOptions, start time.Time) bool {
	res := c.res
	c.timeout = max(opts.ReplyTimeout, opts.GreetingTimeout)
	if line, ok := c.notFTP(ctx); !ok {
		res.Reached, res.ReachErr = Failed, fmt.Sprintf("not an FTP server: it greets with %q", line)
		res.GreetingDelay = time.Since(start)
		return false
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
		return false
	case err != nil && code == 0:
		res.Reached, res.ReachErr = Failed, describeNetErr(err)
		if res.ReachErr == "" {
			res.ReachErr = "no FTP greeting: " + err.Error()
		}
		return false
	case code != 220:
		res.Reached, res.ReachErr = Failed, fmt.Sprintf("greeting %d instead of 220 (server busy or refusing)", code)
		return false
	}
	res.Reached = OK
	res.Software = guessSoftware(banner)
	return true
}

// feat asks for the server's features: is AUTH TLS offered?
func (c *ftpConn) feat(ctx context.Context) {
	res := c.res
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
}

// login sends USER and PASS (anonymous with opts.Anonymous); without a
// user it says goodbye. It reports whether the session is logged in.
func (c *ftpConn) login(ctx context.Context, opts FTPOptions) bool {
	res := c.res
	user, pass := opts.User, opts.Password
	if user == "" && opts.Anonymous {
		user, pass = "anonymous", "natdoctor@"
	}
	if user == "" {
		c.quit(ctx)
		return false
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
		return false
	}
	if code != 230 {
		res.Login = Failed
		c.quit(ctx)
		return false
	}
	res.Login = OK
	return true
}

// list asks for a listing as clients do: PASV with a data connection to
// the advertised address, and to the address dialled when they differ
// (what a lenient client does); then EPSV (RFC 2428: the port only, on the
// control address).
func (c *ftpConn) list(ctx context.Context, opts FTPOptions) {
	res := c.res
	res.PASV = c.pasv(ctx, opts)
	if res.PASV != nil && res.PASV.ParseError == "" {
		res.Data = append(res.Data, c.dataList(ctx, opts, res.PASV.Addr, "advertised"))
		if res.PASV.Addr.Addr() != res.ControlAddr && res.ControlAddr.IsValid() {
			if p := c.pasv(ctx, opts); p != nil && p.ParseError == "" {
				res.Data = append(res.Data, c.dataList(ctx, opts, netip.AddrPortFrom(res.ControlAddr, p.Addr.Port()), "control"))
			}
		}
	}
	if res.EPSV = c.epsv(ctx, opts, res.ControlAddr); res.EPSV != nil && res.EPSV.ParseError == "" {
		res.Data = append(res.Data, c.dataList(ctx, opts, res.EPSV.Addr, "epsv"))
	}
	res.List = Failed
	for _, d := range res.Data {
		if d.Listed {
			res.List = OK
		}
	}
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
		if reflector.Refused(err) {
			dc.Status, dc.Error = Error, err.Error() // not checked: the reflector said no
		}
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
	code, final, rerr := c.reply(ctx, "", time.Now())
	if dc.Status == "" {
		switch {
		case rerr == nil && (code == 226 || code == 250) && unreadable(final):
			// A success code over an empty listing, but the text says the
			// directory could not be read: clients show an empty folder.
			dc.Status, dc.Error = Failed, fmt.Sprintf("the server could not read the directory: %d %s", code, strings.Join(final, " "))
		case rerr == nil && (code == 226 || code == 250 || (dc.Truncated && code == 426)):
			dc.Status, dc.Listed = OK, true
		default:
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

// unreadableTexts are what servers say when LIST could not read the
// directory but the transfer "succeeded": Pure-FTPd 1.0.50 ("226 Sorry, we
// were unable to read [.]") and vsftpd 3.0 ("226 Transfer done (but failed
// to open directory).").
var unreadableTexts = []string{"unable to read", "failed to open directory"}

// unreadable reports whether a transfer's final reply says the directory
// could not be read.
func unreadable(reply []string) bool {
	text := strings.ToLower(strings.Join(reply, " "))
	return slices.ContainsFunc(unreadableTexts, func(s string) bool { return strings.Contains(text, s) })
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
