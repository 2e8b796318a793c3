package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/natdoctor/natdoctor/ipclass"
	"github.com/natdoctor/natdoctor/reflector"
)

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

// serverName is the name a server's certificate should carry: the host
// the target names, else the address dialled.
func serverName(target string, control netip.Addr) string {
	t, _, _ := strings.Cut(target, " ")
	if h, _, err := net.SplitHostPort(t); err == nil && h != "" {
		return h
	}
	return control.String()
}
