package main

import (
	"fmt"
	"io"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// printFTP shows a walk step by step, as probe ftp prints it.
func printFTP(w io.Writer, r *probe.FTPResult, expected *probe.PortRange, verbose bool) {
	if r.Reached != probe.OK {
		fmt.Fprintf(w, "✗ %s: not reached: %s\n", r.Target, r.ReachErr)
		for _, l := range r.Banner {
			fmt.Fprintf(w, "    %s\n", l)
		}
		return
	}
	sw := r.Software
	if sw == "" {
		sw = "software unknown"
	}
	fmt.Fprintf(w, "✓ connected to %s (%s) in %v\n", r.Target, sw, r.Transcript[0].Elapsed.Round(time.Millisecond))
	for _, l := range r.Banner {
		fmt.Fprintf(w, "    %s\n", l)
	}
	switch r.AuthTLS {
	case probe.OK:
		fmt.Fprintln(w, "✓ AUTH TLS offered (FTPS)")
	case probe.Failed:
		fmt.Fprintln(w, "! no AUTH TLS: the password crosses the internet in clear text")
	}
	printTLS(w, r)
	printLogin(w, r)
	printPassive(w, r, expected)
	printData(w, r)
	if verbose {
		printTranscript(w, r)
	}
}

// mark is ✓ or ✗.
func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

// printTLS shows the FTPS session: the certificate, or why TLS failed.
func printTLS(w io.Writer, r *probe.FTPResult) {
	if t := r.TLS; t != nil {
		if t.Status == probe.OK {
			fmt.Fprintf(w, "✓ TLS: %s, %s\n", t.Version, t.CipherSuite)
			fmt.Fprintf(w, "    certificate %s, issued by %s, valid until %s\n", t.Subject, t.Issuer, t.NotAfter.Format("2006-01-02"))
			fmt.Fprintf(w, "    SHA-256 %s\n", t.Fingerprint)
			if !t.Trusted {
				fmt.Fprintf(w, "! certificate not trusted here (%s): clients ask to accept it; compare the fingerprint\n", t.TrustError)
			}
			if !t.ProtectedData {
				fmt.Fprintln(w, "! data connections stay in clear text (PROT P not accepted or not reached)")
			}
		} else if r.Login != probe.Skipped {
			fmt.Fprintf(w, "! TLS: %s; went on in plain text\n", t.Error)
		} else {
			fmt.Fprintf(w, "✗ TLS: %s\n", t.Error)
		}
	}
}

// printLogin shows the login and whether the session stays in its home.
func printLogin(w io.Writer, r *probe.FTPResult) {
	switch r.Login {
	case probe.Skipped:
		fmt.Fprintln(w, "- login not checked (no --user; --anonymous to try anonymous)")
	case probe.OK:
		fmt.Fprintf(w, "✓ logged in as %s\n", r.LoginUser)
	default:
		fmt.Fprintf(w, "✗ login as %s refused: %s\n", r.LoginUser, r.LoginText)
		if probe.TLSRequired(r.LoginCode, r.LoginText) && r.TLS == nil {
			fmt.Fprintln(w, "    the server accepts logins over TLS only: try --tls require")
		}
	}
	switch r.Confined {
	case probe.OK:
		fmt.Fprintf(w, "✓ the session stays inside its home %s\n", r.Home)
	case probe.Failed:
		fmt.Fprintf(w, "! the session can leave its home %s for %s: the whole disk is browsable\n", r.Home, r.EscapedTo)
	}
}

// printPassive shows the PASV and EPSV replies.
func printPassive(w io.Writer, r *probe.FTPResult, expected *probe.PortRange) {
	for _, p := range []struct {
		name string
		p    *probe.Passive
	}{{"PASV", r.PASV}, {"EPSV", r.EPSV}} {
		if p.p == nil {
			continue
		}
		if p.p.ParseError != "" {
			fmt.Fprintf(w, "✗ %s: %s\n", p.name, p.p.ParseError)
			continue
		}
		line := fmt.Sprintf("%s %s: %s", mark(p.p.InRange == nil || *p.p.InRange), p.name, p.p.Addr)
		if p.p.InRange != nil && !*p.p.InRange {
			line += fmt.Sprintf(" (port outside the expected range %s)", expected)
		}
		fmt.Fprintln(w, line)
		if p.name == "PASV" && p.p.Mismatch {
			fmt.Fprintf(w, "! PASV advertises %s (%s), not the address dialled (%s): strict clients fail to list\n",
				p.p.Addr.Addr(), p.p.AddrClass, r.ControlAddr)
		}
	}
}

// printData shows each data connection, the listing and the sampled ports.
func printData(w io.Writer, r *probe.FTPResult) {
	for _, d := range r.Data {
		detail := d.Error
		if d.Listed {
			detail = fmt.Sprintf("listing received (%d bytes)", d.Bytes)
		}
		fmt.Fprintf(w, "%s data connection to %s (%s): %s\n", mark(d.Status == probe.OK), d.Addr, d.Via, detail)
	}
	switch r.List {
	case probe.OK:
		fmt.Fprintln(w, "✓ LIST works")
		for _, l := range r.Listing {
			fmt.Fprintf(w, "    %s\n", l)
		}
	case probe.Failed:
		fmt.Fprintln(w, "✗ LIST failed: clients log in but cannot list files")
	}
	if len(r.Samples) > 0 {
		var ports []uint16
		for _, s := range r.Samples {
			ports = append(ports, s.Addr.Port())
		}
		fmt.Fprintf(w, "passive ports sampled: %s\n", nat.CompressPorts(ports))
		if dead := r.DeadPorts(); len(dead) > 0 {
			fmt.Fprintf(w, "✗ dead passive ports (data connection dropped): %s\n", nat.CompressPorts(dead))
		} else {
			fmt.Fprintln(w, "✓ every sampled passive port carried a connection")
		}
	}
}

// printTranscript shows the session's commands and replies (-v).
func printTranscript(w io.Writer, r *probe.FTPResult) {
	fmt.Fprintln(w, "\ntranscript:")
	for _, e := range r.Transcript {
		if e.Command != "" {
			fmt.Fprintf(w, "  > %s\n", e.Command)
		}
		for _, l := range e.Reply {
			fmt.Fprintf(w, "  < %s\n", l)
		}
	}
}
