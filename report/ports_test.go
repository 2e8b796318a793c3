package report

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/service"
)

var (
	sshPort  = service.Port{Transport: service.TCP, External: 22, Internal: 22, Kind: service.SSH, Service: "ssh"}
	wgPort   = service.Port{Transport: service.UDP, External: 51820, Internal: 51820, Kind: service.Silent, Service: "wireguard"}
	sshHere  = probe.Answer{Outcome: probe.Answered, Banner: "SSH-2.0-OpenSSH_9.2p1", HostKey: "SHA256:here"}
	sshOther = probe.Answer{Outcome: probe.Answered, Banner: "SSH-2.0-OpenSSH_9.2p1", HostKey: "SHA256:other"}
	silent   = probe.Answer{Outcome: probe.Silent}
)

func mapping(proto nat.Protocol, port uint16, to string) *nat.Mapping {
	return &nat.Mapping{Protocol: proto, ExternalPort: port, InternalAddr: addr(to), InternalPort: port}
}

// portsObs is a check of ssh and wireguard on 10.0.1.2 through a reflector.
func portsObs(ports ...PortObservation) *PortsObservations {
	return &PortsObservations{Server: addr("10.0.1.2"), ThisHost: true, MappingsKnown: true, Reflector: "http://r:8021",
		PublicAddr: addr("11.0.0.1"), Discovery: &nat.Discovery{Gateway: addr("10.0.1.1"), LocalAddr: addr("10.0.1.2"),
			UPnP: nat.ProtocolResult{Method: nat.MethodUPnP, Status: nat.StatusOK, ExternalAddr: addr("11.0.0.1")}},
		Unmapped: &probe.PortProbe{Port: 52000, Status: probe.Failed, Outcome: probe.TimedOut}, Ports: ports}
}

func answer(a probe.Answer) *probe.Answer { return &a }

func portCodes(r *PortsReport) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Code)
	}
	return out
}

func TestPortsRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		obs    *PortsObservations
		status []string
		codes  []string // in report order
		exit1  bool
	}{
		{name: "ssh reaches the server, wireguard mapped and silent",
			obs: portsObs(
				PortObservation{Port: sshPort, Mapping: mapping(nat.TCP, 22, "10.0.1.2"), Inside: sshHere, Outside: answer(sshHere)},
				PortObservation{Port: wgPort, Mapping: mapping(nat.UDP, 51820, "10.0.1.2"), Inside: silent, Outside: answer(silent)}),
			status: []string{PortReachable, PortUnverified}, codes: []string{CodeUDPUnverified}},
		{name: "nothing mapped: refused from outside",
			obs: portsObs(
				PortObservation{Port: sshPort, Inside: sshHere, Outside: answer(probe.Answer{Outcome: probe.Refused})},
				PortObservation{Port: wgPort, Inside: silent, Outside: answer(probe.Answer{Outcome: probe.Refused})}),
			status: []string{PortUnreachable, PortUnreachable}, codes: []string{CodePortNotMapped, CodePortNotMapped}, exit1: true},
		{name: "wireguard not mapped, silent from outside too",
			obs:    portsObs(PortObservation{Port: wgPort, Inside: silent, Outside: answer(silent)}),
			status: []string{PortUnreachable}, codes: []string{CodePortNotMapped}, exit1: true},
		{name: "same banner, another host key: another machine",
			obs:    portsObs(PortObservation{Port: sshPort, Mapping: mapping(nat.TCP, 22, "10.0.1.3"), Inside: sshHere, Outside: answer(sshOther)}),
			status: []string{PortUnreachable}, codes: []string{CodePortMappedElse}, exit1: true},
		{name: "mapped here, another machine answers, a mapped canary fails: default host",
			obs: func() *PortsObservations {
				o := portsObs(PortObservation{Port: sshPort, Mapping: mapping(nat.TCP, 22, "10.0.1.2"), Inside: sshHere, Outside: answer(sshOther)})
				o.MappedCanary = &probe.PortProbe{Port: 53000, Status: probe.Failed, Outcome: probe.Refused}
				return o
			}(),
			status: []string{PortUnreachable}, codes: []string{CodeDefaultHost, CodePortOtherHost}, exit1: true},
		{name: "mapped here, dropped from outside: blocked",
			obs:    portsObs(PortObservation{Port: sshPort, Mapping: mapping(nat.TCP, 22, "10.0.1.2"), Inside: sshHere, Outside: answer(probe.Answer{Outcome: probe.TimedOut})}),
			status: []string{PortUnreachable}, codes: []string{CodePortBlocked}, exit1: true},
		{name: "nothing listens, natdoctor's nonce came back",
			obs: portsObs(PortObservation{Port: sshPort, Mapping: mapping(nat.TCP, 22, "10.0.1.2"), Canary: true,
				Inside: probe.Answer{Outcome: probe.Refused}, Outside: answer(probe.Answer{Outcome: probe.ThisHost})}),
			status: []string{PortUnreachable}, codes: []string{CodePortNotListening}, exit1: true},
		{name: "the router answers on the port itself",
			obs:    portsObs(PortObservation{Port: sshPort, Inside: sshHere, Outside: answer(sshOther), Router: answer(sshOther)}),
			status: []string{PortUnreachable}, codes: []string{CodePortRouterAnswers}, exit1: true},
		{name: "this host is the default host, nothing mapped",
			obs: func() *PortsObservations {
				o := portsObs(PortObservation{Port: sshPort, Inside: sshHere, Outside: answer(sshHere)},
					PortObservation{Port: wgPort, Inside: silent, Outside: answer(silent)})
				o.Unmapped = &probe.PortProbe{Port: 52000, Status: probe.OK, Outcome: probe.ThisHost}
				return o
			}(),
			status: []string{PortReachable, PortUnverified}, codes: []string{CodeThisHostDefault, CodePortViaDefaultHost, CodePortViaDefaultHost}},
		{name: "NAT-PMP router: mappings unknown, not reachable",
			obs: func() *PortsObservations {
				o := portsObs(PortObservation{Port: sshPort, Inside: sshHere, Outside: answer(probe.Answer{Outcome: probe.TimedOut})})
				o.MappingsKnown, o.MappingsErr = false, "NAT-PMP cannot look mappings up"
				return o
			}(),
			status: []string{PortUnreachable}, codes: []string{CodePortUnreachable}, exit1: true},
		{name: "no reflector: mapped here is unverified, not healthy-by-default",
			obs: func() *PortsObservations {
				o := portsObs(PortObservation{Port: sshPort, Mapping: mapping(nat.TCP, 22, "10.0.1.2"), Inside: sshHere})
				o.Reflector, o.Unmapped = "", nil
				return o
			}(),
			status: []string{PortUnverified}, codes: nil},
		{name: "TLS from outside, self-signed",
			obs: func() *PortsObservations {
				tls := probe.Answer{Outcome: probe.Answered, TLS: &probe.TLSInfo{Subject: "CN=nas", Fingerprint: "ab", TrustError: "self-signed"}}
				return portsObs(PortObservation{Port: service.Port{Transport: service.TCP, External: 443, Internal: 443, Kind: service.TLS},
					Mapping: mapping(nat.TCP, 443, "10.0.1.2"), Inside: tls, Outside: answer(tls)})
			}(),
			status: []string{PortReachable}, codes: []string{CodeTLSUntrusted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := BuildPorts(tc.obs)
			var status []string
			for _, p := range r.Ports {
				status = append(status, p.Status)
			}
			if !slices.Equal(status, tc.status) {
				t.Errorf("statuses %v, want %v", status, tc.status)
			}
			if got := portCodes(r); !slices.Equal(got, tc.codes) {
				t.Errorf("findings %v, want %v", got, tc.codes)
			}
			if r.HasErrors() != tc.exit1 {
				t.Errorf("errors %v, want %v (verdict %q)", r.HasErrors(), tc.exit1, r.Verdict)
			}
			if r.Healthy && strings.HasPrefix(r.Verdict, "healthy") && slices.Contains(status, PortUnverified) {
				t.Errorf("verdict %q with an unverified port", r.Verdict)
			}
		})
	}
}

func TestPortsNotChecked(t *testing.T) {
	o := portsObs(PortObservation{Port: sshPort, Mapping: mapping(nat.TCP, 22, "10.0.1.2"), Inside: sshHere})
	o.Reflector, o.Unmapped = "", nil
	r := BuildPorts(o)
	if len(r.Unchecked) != 1 || r.Unchecked[0].Check != "outside" {
		t.Fatalf("not checked %+v, want the view from outside", r.Unchecked)
	}
	if strings.HasPrefix(r.Verdict, "healthy") {
		t.Errorf("verdict %q: nothing was checked from outside", r.Verdict)
	}
	var text, js bytes.Buffer
	if err := r.WriteText(&text, false); err != nil || !strings.Contains(text.String(), "Not checked:") {
		t.Errorf("text: %v\n%s", err, text.String())
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back["schema"] != PortsSchema {
		t.Errorf("JSON: %v %v", err, back["schema"])
	}
}

func TestPortsIPv6Rules(t *testing.T) {
	v6 := func(ports ...PortObservation) *PortsObservations {
		return &PortsObservations{Family: "ipv6", Server: addr("2001:db8:2::2"), ThisHost: true, Reflector: "http://[2001:db8:1::2]:8021",
			PublicAddr: addr("2001:db8:2::2"), DiscoveryErr: "not asked over IPv6", MappingsErr: "not asked over IPv6",
			Unmapped: &probe.PortProbe{Port: 52000, Status: probe.Failed, Outcome: probe.TimedOut}, Ports: ports}
	}
	dropped := PortObservation{Port: sshPort, Inside: sshHere, Outside: answer(probe.Answer{Outcome: probe.TimedOut})}
	r := BuildPorts(v6(dropped))
	if got := portCodes(r); !slices.Equal(got, []string{CodeIPv6Filtered}) || !r.HasErrors() || !strings.Contains(r.Findings[0].Fix, "natdoctor add --ipv6 22") {
		t.Errorf("dropped: %v %q", got, r.Findings[0].Fix)
	}
	if !slices.ContainsFunc(r.Unchecked, func(u Unchecked) bool { return u.Check == "router" }) {
		t.Errorf("the router is not checked over IPv6, and must say so: %+v", r.Unchecked)
	}
	o := v6(dropped)
	o.Pinholes = map[string]nat.Pinhole{"tcp/22": {ID: 3, Protocol: nat.TCP, Port: 22, Addr: addr("2001:db8:2::2")}}
	r = BuildPorts(o)
	if f := r.Findings[0]; f.Code != CodeIPv6Filtered || !strings.Contains(f.Fix, "this host's firewall") || !strings.Contains(f.Summary, "opened a pinhole") {
		t.Errorf("dropped behind a kept pinhole: %+v", f)
	}
	o = v6(PortObservation{Port: sshPort, Inside: sshHere, Outside: answer(sshHere)})
	o.Unmapped = &probe.PortProbe{Port: 52000, Status: probe.OK, Outcome: probe.ThisHost}
	r = BuildPorts(o)
	if got := portCodes(r); !slices.Equal(got, []string{CodeIPv6FirewallOpen}) || r.Ports[0].Status != PortReachable || r.HasErrors() {
		t.Errorf("open firewall: %v %+v", got, r.Ports)
	}
}

// TestPortsNothingChecked: no router, no reflector, no server address: the
// report is not healthy, and it says what was not checked.
func TestPortsNothingChecked(t *testing.T) {
	r := BuildPorts(&PortsObservations{DiscoveryErr: "no IPv4 default gateway", MappingsErr: "no router", Ports: []PortObservation{{Port: sshPort}}})
	if !r.HasErrors() || r.Findings[0].Code != CodeNotVerified || r.Ports[0].Status != PortUnverified {
		t.Errorf("nothing checked: %+v %+v", r.Findings, r.Ports)
	}
	if !slices.ContainsFunc(r.Unchecked, func(u Unchecked) bool { return u.Check == "outside" }) {
		t.Errorf("not checked: %+v", r.Unchecked)
	}
}

func TestIPv6FirewallFindings(t *testing.T) {
	if fs := IPv6FirewallFindings(true, true, "2001:db8:2::2"); len(fs) != 0 {
		t.Errorf("on, pinholes allowed: %v", fs)
	}
	if fs := IPv6FirewallFindings(true, false, "2001:db8:2::2"); len(fs) != 1 || fs[0].Code != CodeIPv6PinholesOff || !strings.Contains(fs[0].Fix, "FRITZ!Box") {
		t.Errorf("pinholes refused: %v", fs)
	}
	if fs := IPv6FirewallFindings(false, true, "2001:db8:2::2"); len(fs) != 1 || fs[0].Code != CodeIPv6FirewallOpen {
		t.Errorf("firewall off: %v", fs)
	}
}

// TestPortsSilentTCP: a silent TCP service (a game server) accepting from
// outside is reachable when the router maps the port here, and not
// verifiable otherwise: another silent server would look the same.
func TestPortsSilentTCP(t *testing.T) {
	mc := service.Port{Transport: service.TCP, External: 25565, Internal: 25565, Kind: service.Plain, Service: "minecraft"}
	quiet := probe.Answer{Outcome: probe.Answered, Detail: "accepts, says nothing"}
	r := BuildPorts(portsObs(PortObservation{Port: mc, Mapping: mapping(nat.TCP, 25565, "10.0.1.2"), Inside: quiet, Outside: answer(quiet)}))
	if r.Ports[0].Status != PortReachable || len(r.Findings) != 0 {
		t.Errorf("mapped here: %+v %v", r.Ports, portCodes(r))
	}
	r = BuildPorts(portsObs(PortObservation{Port: mc, Mapping: mapping(nat.TCP, 25565, "10.0.1.3"), Inside: quiet, Outside: answer(quiet)}))
	if r.Ports[0].Status != PortUnreachable || !slices.Equal(portCodes(r), []string{CodePortMappedElse}) {
		t.Errorf("mapped elsewhere: %+v %v", r.Ports, portCodes(r))
	}
	o := portsObs(PortObservation{Port: mc, Inside: quiet, Outside: answer(quiet)})
	o.MappingsKnown, o.MappingsErr = false, "NAT-PMP cannot look mappings up"
	r = BuildPorts(o)
	if r.Ports[0].Status != PortUnverified || !slices.Equal(portCodes(r), []string{CodePortUnverified}) || r.HasErrors() {
		t.Errorf("mapping unknown: %+v %v", r.Ports, portCodes(r))
	}
}
