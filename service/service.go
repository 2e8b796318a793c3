// Package service names the ports natdoctor check and the mapping verbs
// know by name (ssh, https, wireguard, ...) and parses port specs
// ("22", "51820/udp", "2222:22/tcp"): what to map, and what to expect of
// what answers there. Ports and transports are IANA's (RFC 6335); the
// presets are one table, Presets.
package service

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Transport is a port's transport protocol.
type Transport string

// Transports.
const (
	TCP Transport = "tcp"
	UDP Transport = "udp"
)

// Kind says what natdoctor expects to answer on a port, and so how it
// tells one server from another.
type Kind string

// Kinds of service.
const (
	// Banner: the server speaks first (SSH, FTP, SMTP); natdoctor reads
	// its first line.
	Banner Kind = "banner"
	// SSH: an SSH server; natdoctor reads its banner and host key (two
	// OpenSSH servers of one version have the same banner).
	SSH Kind = "ssh"
	// HTTP: the server answers a HEAD request with a status line.
	HTTP Kind = "http"
	// TLS: the server answers a TLS handshake; natdoctor reads its
	// certificate (subject, expiry, trusted or not).
	TLS Kind = "tls"
	// Plain: a TCP server that says nothing first and is not asked
	// anything (a game server): natdoctor can tell only that it accepts.
	Plain Kind = "tcp"
	// Silent: a UDP service that does not answer strangers (WireGuard,
	// OpenVPN with tls-auth): from outside nothing can be verified but
	// the path to it; the router's mapping is checked instead.
	Silent Kind = "udp-silent"
	// Datagram: a UDP service that may answer a stray datagram (an echo,
	// a game server's query port).
	Datagram Kind = "udp"
)

// Port is one port to check or map: the external port clients use, the
// internal port the server listens on, and what to expect there.
type Port struct {
	Transport Transport `json:"protocol"`
	External  uint16    `json:"external_port"`
	Internal  uint16    `json:"internal_port"`
	Kind      Kind      `json:"expect"`
	Service   string    `json:"service,omitempty"` // the preset's name, if any
}

func (p Port) String() string {
	if p.External == p.Internal {
		return fmt.Sprintf("%d/%s", p.External, p.Transport)
	}
	return fmt.Sprintf("%d:%d/%s", p.External, p.Internal, p.Transport)
}

// Preset is a service known by name.
type Preset struct {
	Name  string
	Ports []Port
	Doc   string // what it is, for --help
}

// Presets are the services natdoctor knows by name. A new one is a row.
var Presets = []Preset{
	{Name: "ssh", Ports: []Port{{Transport: TCP, External: 22, Internal: 22, Kind: SSH}}, Doc: "OpenSSH and others: the banner and host key"},
	{Name: "ftp", Ports: []Port{{Transport: TCP, External: 21, Internal: 21, Kind: Banner}}, Doc: "an FTP control port (natdoctor diagnose walks the rest)"},
	{Name: "http", Ports: []Port{{Transport: TCP, External: 80, Internal: 80, Kind: HTTP}}, Doc: "a web server: its status line"},
	{Name: "https", Ports: []Port{{Transport: TCP, External: 443, Internal: 443, Kind: TLS}}, Doc: "a web server over TLS: its certificate"},
	{Name: "wireguard", Ports: []Port{{Transport: UDP, External: 51820, Internal: 51820, Kind: Silent}}, Doc: "WireGuard: silent to strangers, so the router's mapping is checked"},
	{Name: "openvpn", Ports: []Port{{Transport: UDP, External: 1194, Internal: 1194, Kind: Silent}}, Doc: "OpenVPN over UDP: silent to strangers with tls-auth"},
	{Name: "minecraft", Ports: []Port{{Transport: TCP, External: 25565, Internal: 25565, Kind: Plain}}, Doc: "Minecraft Java Edition: accepts, says nothing first"},
	{Name: "plex", Ports: []Port{{Transport: TCP, External: 32400, Internal: 32400, Kind: HTTP}}, Doc: "Plex Media Server: its web port"},
}

// Lookup returns the preset called name.
func Lookup(name string) (Preset, bool) {
	i := slices.IndexFunc(Presets, func(p Preset) bool { return p.Name == strings.ToLower(name) })
	if i < 0 {
		return Preset{}, false
	}
	return Presets[i], true
}

// Names are the presets' names, for help texts and completion.
func Names() []string {
	var out []string
	for _, p := range Presets {
		out = append(out, p.Name)
	}
	return out
}

// ByPort returns the preset whose port this is, to know what to expect on
// a port given by number.
func ByPort(t Transport, port uint16) (Preset, bool) {
	for _, p := range Presets {
		for _, pp := range p.Ports {
			if pp.Transport == t && pp.Internal == port {
				return p, true
			}
		}
	}
	return Preset{}, false
}

// ParsePort parses one port spec: PORT, PORT/tcp, PORT/udp,
// EXTERNAL:INTERNAL[/PROTO] or PORT/PROTO:INTERNAL, or a preset's name.
// What to expect comes from the preset of the internal port, else Banner
// (TCP: the server may speak first) or Datagram (UDP).
func ParsePort(s string) ([]Port, error) {
	if p, ok := Lookup(s); ok {
		out := slices.Clone(p.Ports)
		for i := range out {
			out[i].Service = p.Name
		}
		return out, nil
	}
	spec, proto := s, TCP
	var tail string
	if i := strings.IndexByte(spec, '/'); i >= 0 {
		spec, tail = s[:i], s[i+1:]
		name, rest, hasInternal := strings.Cut(tail, ":")
		switch strings.ToLower(name) {
		case "tcp":
		case "udp":
			proto = UDP
		default:
			return nil, fmt.Errorf("%q: want PORT[/tcp|/udp], not /%s", s, name)
		}
		if hasInternal {
			if strings.Contains(spec, ":") {
				return nil, fmt.Errorf("%q: give the internal port once", s)
			}
			spec += ":" + rest
		}
	}
	extS, inS, mapped := strings.Cut(spec, ":")
	ext, err := portNumber(extS)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", s, err)
	}
	in := ext
	if mapped {
		if in, err = portNumber(inS); err != nil {
			return nil, fmt.Errorf("%q: %v", s, err)
		}
	}
	p := Port{Transport: proto, External: ext, Internal: in, Kind: Banner}
	if proto == UDP {
		p.Kind = Datagram
	}
	if pr, ok := ByPort(proto, in); ok {
		p.Kind, p.Service = pr.Ports[0].Kind, pr.Name
		for _, pp := range pr.Ports {
			if pp.Internal == in && pp.Transport == proto {
				p.Kind = pp.Kind
			}
		}
	}
	return []Port{p}, nil
}

func portNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(n), nil
}

// ParsePorts parses every spec; a port given twice is an error.
func ParsePorts(specs []string) ([]Port, error) {
	var out []Port
	seen := map[string]bool{}
	for _, s := range specs {
		for _, part := range strings.Split(s, ",") {
			ps, err := ParsePort(strings.TrimSpace(part))
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				k := fmt.Sprintf("%d/%s", p.External, p.Transport)
				if seen[k] {
					return nil, fmt.Errorf("port %s given twice", k)
				}
				seen[k] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}
