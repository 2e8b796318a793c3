package lab

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The judge: real FTP clients on the outside host log in and list, many
// times, as users would. What they experience is the ground truth that
// natdoctor's verdicts are checked against; natdoctor plays no part in it.
//
// Every client uses PASV (not EPSV), so that what it does with the address
// in the reply is tested. Strict clients connect to that address as given;
// lenient ones replace a private address with the control connection's, as
// FileZilla does.

// clientTimeout is how long the judge's clients wait for a connection or a
// reply: lftp's default, and FileZilla's. A shorter one would fail servers
// that real users can use (a greeting late by a reverse lookup).
const clientTimeout = "20"

// ClientRun is what one client saw over its listings.
type ClientRun struct {
	Client   string // e.g. "lftp (strict)"
	Lenient  bool
	LoggedIn bool
	Listings int // attempted
	Listed   int // that showed the files
	// DataFailures counts failed data connections, also those a client
	// retried on its own without reporting them.
	DataFailures int
	Note         string // the first failure, in the client's words
	// Ports are the passive ports the server handed this client.
	Ports map[int]bool
}

// OK reports whether every listing worked with no failed data connection.
func (r ClientRun) OK() bool {
	return r.LoggedIn && r.Listed == r.Listings && r.DataFailures == 0
}

func (r ClientRun) String() string {
	s := fmt.Sprintf("%s: %d/%d listed", r.Client, r.Listed, r.Listings)
	if !r.LoggedIn {
		s = r.Client + ": no login"
	}
	if r.DataFailures > 0 {
		s += fmt.Sprintf(", %d failed data connections", r.DataFailures)
	}
	if r.Note != "" && !r.OK() {
		s += " (" + r.Note + ")"
	}
	return s
}

// Judgement is what every client saw.
type Judgement struct {
	Runs []ClientRun
}

// LenientFails reports whether a lenient client had any failure: then the
// server does not work for the users who have the most forgiving clients.
func (j Judgement) LenientFails() bool { return j.fails(true) }

// StrictFails reports whether a strict client had any failure.
func (j Judgement) StrictFails() bool { return j.fails(false) }

func (j Judgement) fails(lenient bool) bool {
	for _, r := range j.Runs {
		if r.Lenient == lenient && !r.OK() {
			return true
		}
	}
	return false
}

// Summary is one line: "all clients work", "strict clients fail", ...
func (j Judgement) Summary() string {
	switch {
	case j.LenientFails():
		return "every client fails"
	case j.StrictFails():
		return "strict clients fail"
	}
	return "all clients work"
}

func (j Judgement) String() string {
	var parts []string
	for _, r := range j.Runs {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, "; ")
}

// JudgeOptions say where the clients connect.
type JudgeOptions struct {
	Port     int // external control port; 0: 21
	Listings int // per lenient client; 0: 24 (strict clients do half)
	// IPv6 connects to the server's global IPv6 address (Server6): the
	// clients then use EPSV, as every client does over IPv6.
	IPv6 bool
}

// Judge runs lftp (strict and lenient), curl and Python's ftplib (lenient
// and strict) from the outside host against the router's WAN address.
func (l *Lab) Judge(t testing.TB, o JudgeOptions) Judgement {
	t.Helper()
	if o.Port == 0 {
		o.Port = 21
	}
	if o.Listings == 0 {
		o.Listings = 24
	}
	strictN := max(o.Listings/2, 1)
	host := l.WAN().String()
	if o.IPv6 {
		// Over IPv6 an EPSV reply carries no address: strict and lenient
		// clients behave alike, so each client runs once, the three at
		// once (a dropped port costs each client its timeouts).
		host = Server6.String()
		runs := make([]ClientRun, 3)
		var wg sync.WaitGroup
		wg.Go(func() { runs[0] = l.judgeLftpCovering(t, host, o.Port, o.Listings) })
		wg.Go(func() { runs[1] = l.judgeCurl(t, host, o.Port, max(o.Listings/4, 1)) })
		wg.Go(func() { runs[2] = l.judgeFtplib(t, host, o.Port, true, o.Listings) })
		wg.Wait()
		return Judgement{Runs: runs}
	}
	return Judgement{Runs: []ClientRun{
		l.judgeLftpCovering(t, host, o.Port, o.Listings),
		l.judgeCurl(t, host, o.Port, max(o.Listings/4, 1)),
		l.judgeFtplib(t, host, o.Port, true, o.Listings),
		l.judgeLftp(t, host, o.Port, false, strictN),
		l.judgeFtplib(t, host, o.Port, false, strictN),
	}}
}

func modeName(client string, lenient bool) string {
	if lenient {
		return client + " (lenient)"
	}
	return client + " (strict)"
}

// maxCoverageRounds bounds how often judgeLftpCovering lists again.
const maxCoverageRounds = 6

// judgeLftpCovering is the lenient lftp, listing again (in rounds of n)
// until the server has handed out every port of its passive range: the
// server picks them at random, and its draws repeat across sessions, so a
// count of listings alone can miss the one dead port of eleven.
func (l *Lab) judgeLftpCovering(t testing.TB, host string, port int, n int) ClientRun {
	t.Helper()
	high := PassiveHigh
	if l.Opts.ServerPassiveHigh != 0 {
		high = l.Opts.ServerPassiveHigh
	}
	total := ClientRun{Client: modeName("lftp", true), Lenient: true, Ports: map[int]bool{}}
	for round := 0; round < maxCoverageRounds; round++ {
		r := l.judgeLftp(t, host, port, true, n)
		total.LoggedIn = total.LoggedIn || r.LoggedIn
		total.Listings += r.Listings
		total.Listed += r.Listed
		total.DataFailures += r.DataFailures
		if total.Note == "" {
			total.Note = r.Note
		}
		for p := range r.Ports {
			total.Ports[p] = true
		}
		if !r.OK() || len(total.Ports) == high-PassiveLow+1 {
			return total
		}
	}
	total.Note = fmt.Sprintf("only %d of %d passive ports handed out in %d listings", len(total.Ports), high-PassiveLow+1, total.Listings)
	return total
}

// pasvRE matches a PASV reply's port bytes in lftp's debug output.
var pasvRE = regexp.MustCompile(`227 Entering Passive Mode \(\d+,\d+,\d+,\d+,(\d+),(\d+)\)`)

// epsvRE matches an EPSV reply's port in lftp's debug output (RFC 2428).
var epsvRE = regexp.MustCompile(`229 [^(]*\(\|\|\|(\d+)\|\)`)

// judgeLftp lists n times in one lftp session, with its debug output, in
// which every data connection and every silent reconnect shows.
func (l *Lab) judgeLftp(t testing.TB, host string, port int, lenient bool, n int) ClientRun {
	t.Helper()
	fix := "no"
	if lenient {
		fix = "yes"
	}
	// cmd:fail-exit ends the session at the first listing lftp gives up
	// on; a data connection it retried silently shows in the debug output.
	script := "set net:timeout " + clientTimeout + "; set net:max-retries 2; set net:reconnect-interval-base 1; set net:reconnect-interval-max 1; " +
		"set cmd:fail-exit yes; set cache:enable no; set ftp:ssl-allow no; set ftp:prefer-epsv no; set ftp:passive-mode on; set ftp:fix-pasv-address " + fix + "; "
	for i := 0; i < n; i++ {
		script += "ls; "
	}
	user, pw := l.Login()
	out, _ := l.Outside.Run("lftp", "-d", "-p", strconv.Itoa(port), "-u", user+","+pw, "-e", script+"quit", host)
	r := ClientRun{Client: modeName("lftp", lenient), Lenient: lenient, Listings: n}
	r.LoggedIn = strings.Contains(out, "<--- 230")
	r.Listed = strings.Count(out, "file1.txt")
	r.DataFailures = strings.Count(out, "Closing aborted data socket") + dataTimeouts(out)
	r.Ports = map[int]bool{}
	for _, m := range pasvRE.FindAllStringSubmatch(out, -1) {
		hi, _ := strconv.Atoi(m[1])
		lo, _ := strconv.Atoi(m[2])
		r.Ports[hi*256+lo] = true
	}
	for _, m := range epsvRE.FindAllStringSubmatch(out, -1) {
		p, _ := strconv.Atoi(m[1])
		r.Ports[p] = true
	}
	if !r.LoggedIn {
		r.Note = firstLine(out, "<--- 5", "<--- 4", "**** ")
	} else if r.DataFailures > 0 || r.Listed < n {
		r.Note = firstLine(out, "**** ")
	}
	return r
}

// dataTimeouts counts the data connections lftp gave up on and retried
// in a new session ("**** Timeout - reconnecting" right after "Connecting
// data socket"): over EPSV that is all it says of a dropped passive port.
func dataTimeouts(out string) int {
	n, prev := 0, ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.Contains(line, "Timeout - reconnecting") && strings.Contains(prev, "Connecting data socket") {
			n++
		}
		prev = line
	}
	return n
}

// judgeCurl lists n times, one curl process each (curl skips a PASV
// address by default: lenient).
func (l *Lab) judgeCurl(t testing.TB, host string, port int, n int) ClientRun {
	t.Helper()
	r := ClientRun{Client: "curl (lenient)", Lenient: true, Listings: n}
	url := fmt.Sprintf("ftp://%s/", net.JoinHostPort(host, strconv.Itoa(port)))
	args := []string{"-sS", "--disable-epsv", "--connect-timeout", clientTimeout, "--max-time", "60", "-u", "", url}
	if strings.Contains(host, ":") {
		args = slices.Delete(args, 1, 2) // over IPv6 only EPSV can work
	}
	user, pw := l.Login()
	args[len(args)-2] = user + ":" + pw
	for i := 0; i < n; i++ {
		out, err := l.Outside.Run("curl", args...)
		switch {
		case err == nil && strings.Contains(out, "file1.txt"):
			r.LoggedIn = true
			r.Listed++
		case strings.Contains(out, "(67)") || strings.Contains(out, "Access denied"):
			if r.Note == "" {
				r.Note = strings.TrimSpace(out)
			}
			return r // login refused: more tries say nothing new
		default:
			r.DataFailures++
			if r.Note == "" {
				r.Note = strings.TrimSpace(out)
			}
			if !r.LoggedIn && i >= 2 {
				return r // never got in: three tries say it
			}
		}
	}
	return r
}

// ftplibScript logs in once and lists n times; strict trusts the address
// in PASV replies.
const ftplibScript = `
import ftplib, socket, sys
host, port, user, pw, n, strict = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6] == "1"
t = int(sys.argv[7])
f = ftplib.FTP(timeout=t)
f.trust_server_pasv_ipv4_address = strict
try:
    f.connect(host, port)
    f.login(user, pw)
except Exception as e:
    print("LOGIN-FAILED", repr(e)); sys.exit(0)
print("LOGGED-IN")
f.set_pasv(True)
for i in range(n):
    lines = []
    try:
        f.retrlines("LIST", lines.append)
        print("LISTED" if any("file1.txt" in l for l in lines) else "EMPTY")
    except Exception as e:
        print("DATA-FAILED", repr(e))
        try:
            f.close()
        except Exception:
            pass
        f = ftplib.FTP(timeout=t)
        f.trust_server_pasv_ipv4_address = strict
        try:
            f.connect(host, port); f.login(user, pw)
        except Exception as e:
            print("RELOGIN-FAILED", repr(e)); sys.exit(0)
`

func (l *Lab) judgeFtplib(t testing.TB, host string, port int, lenient bool, n int) ClientRun {
	t.Helper()
	strict := "1"
	if lenient {
		strict = "0"
	}
	user, pw := l.Login()
	out, _ := l.Outside.Run("python3", "-c", ftplibScript, host, strconv.Itoa(port), user, pw, strconv.Itoa(n), strict, clientTimeout)
	r := ClientRun{Client: modeName("ftplib", lenient), Lenient: lenient, Listings: n}
	r.LoggedIn = strings.Contains(out, "LOGGED-IN")
	r.Listed = strings.Count(out, "LISTED")
	r.DataFailures = strings.Count(out, "DATA-FAILED")
	if !r.OK() {
		r.Note = firstLine(out, "LOGIN-FAILED", "DATA-FAILED", "RELOGIN-FAILED", "Traceback")
	}
	return r
}

// Login returns the user name and password clients log in with.
func (l *Lab) Login() (user, password string) {
	if l.Anonymous() {
		return "anonymous", "natdoctor@lab.invalid"
	}
	return FTPUser, FTPPassword
}

// firstLine returns the first line of out that contains one of marks.
func firstLine(out string, marks ...string) string {
	for _, line := range strings.Split(out, "\n") {
		for _, m := range marks {
			if strings.Contains(line, m) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}
