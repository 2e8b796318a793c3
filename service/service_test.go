package service

import (
	"slices"
	"testing"
)

func TestParsePort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Port
	}{
		{"22", []Port{{Transport: TCP, External: 22, Internal: 22, Kind: SSH, Service: "ssh"}}},
		{"51820/udp", []Port{{Transport: UDP, External: 51820, Internal: 51820, Kind: Silent, Service: "wireguard"}}},
		{"2222:22", []Port{{Transport: TCP, External: 2222, Internal: 22, Kind: SSH, Service: "ssh"}}},
		{"2222/tcp:22", []Port{{Transport: TCP, External: 2222, Internal: 22, Kind: SSH, Service: "ssh"}}},
		{"8443:443/TCP", []Port{{Transport: TCP, External: 8443, Internal: 443, Kind: TLS, Service: "https"}}},
		{"7777/udp", []Port{{Transport: UDP, External: 7777, Internal: 7777, Kind: Datagram}}},
		{"9000", []Port{{Transport: TCP, External: 9000, Internal: 9000, Kind: Banner}}},
		{"WireGuard", []Port{{Transport: UDP, External: 51820, Internal: 51820, Kind: Silent, Service: "wireguard"}}},
	} {
		got, err := ParsePort(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParsePort(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0", "65536", "22/sctp", "22/", "a", "2222:22/tcp:23", "22:0", "-1", "ssh2"} {
		if got, err := ParsePort(bad); err == nil {
			t.Errorf("ParsePort(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParsePortsTwice(t *testing.T) {
	if _, err := ParsePorts([]string{"ssh", "22"}); err == nil {
		t.Error("22/tcp given twice (ssh and 22) was accepted")
	}
	ps, err := ParsePorts([]string{"22,80", "51820/udp", "https"})
	if err != nil || len(ps) != 4 {
		t.Fatalf("ParsePorts = %v, %v", ps, err)
	}
	// 53/tcp and 53/udp are two ports.
	if _, err := ParsePorts([]string{"53", "53/udp"}); err != nil {
		t.Errorf("53/tcp and 53/udp: %v", err)
	}
}

func TestPresets(t *testing.T) {
	for _, name := range []string{"ssh", "http", "https", "wireguard", "openvpn", "minecraft", "plex"} {
		p, ok := Lookup(name)
		if !ok || len(p.Ports) == 0 || p.Doc == "" {
			t.Errorf("preset %s: %+v, %v", name, p, ok)
		}
		for _, pp := range p.Ports {
			if pp.External == 0 || pp.Internal == 0 || (pp.Transport != TCP && pp.Transport != UDP) || pp.Kind == "" {
				t.Errorf("preset %s: port %+v", name, pp)
			}
		}
	}
	if w, _ := Lookup("wireguard"); w.Ports[0].Transport != UDP || w.Ports[0].Kind != Silent {
		t.Errorf("wireguard: %+v", w.Ports)
	}
}
