package report

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// cgnatWithIPv6 is a home behind carrier-grade NAT (no inbound IPv4) whose
// server is reachable over IPv6 through pinholes for 21 and 42000-42010.
func cgnatWithIPv6() *Observations {
	o := airport()
	o.Discovery.NATPMP.ExternalAddr = addr("100.64.0.1")
	o.Outside = nil
	o.Config = nil
	o.Inside.PASV.AddrClass = "public"
	o.Inside.AuthTLS = probe.OK
	server := addr("2001:db8:2::2")
	in := &probe.FTPResult{Target: "[2001:db8:2::2]:21", ControlAddr: server, Reached: probe.OK, Banner: o.Inside.Banner,
		Login: probe.OK, AuthTLS: probe.OK, List: probe.OK,
		EPSV: &probe.Passive{Reply: "229 Extended Passive mode OK (|||42003|)", Addr: netip.AddrPortFrom(server, 42003)}}
	out := *in
	out.Target = "[2001:db8:2::2]:21 (from outside)"
	var passive []probe.PortProbe
	var holes []nat.Pinhole
	for p := uint16(42000); p <= 42010; p++ {
		passive = append(passive, probe.PortProbe{Port: p, Status: probe.OK, Outcome: "this-host"})
		holes = append(holes, nat.Pinhole{Method: nat.MethodUPnP, Protocol: nat.TCP, Addr: server, Port: p})
	}
	holes = append(holes, nat.Pinhole{Method: nat.MethodPCP, Protocol: nat.TCP, Addr: server, Port: 21})
	o.IPv6 = &IPv6Observations{Server: server, Reflector: "http://[2001:db8:1::2]:8021", Inside: in,
		Outside: &probe.OutsideResult{PublicAddr: server, Outside: &out, SameServer: check.Yes, Passive: passive,
			Canary: &probe.CanaryResult{Unmapped: probe.PortProbe{Port: 51234, Status: probe.Failed, Outcome: "timeout"}}},
		Pinholes: holes}
	return o
}

func codes(r *Report) map[string]bool {
	seen := map[string]bool{}
	for _, f := range r.Findings {
		seen[f.Code] = true
	}
	return seen
}

// TestIPv4ImpossibleIPv6Works: the verdict names each family, and the
// IPv4 failure does not leak into IPv6's.
func TestIPv4ImpossibleIPv6Works(t *testing.T) {
	r := Build(cgnatWithIPv6())
	if len(r.Families) != 2 || r.Families[0].Status != "impossible" || r.Families[1].Status != "reachable" {
		t.Fatalf("families %+v", r.Families)
	}
	if !strings.Contains(r.Verdict, "IPv4: impossible (carrier-grade NAT") || !strings.Contains(r.Verdict, "IPv6: reachable at 2001:db8:2::2") ||
		!strings.Contains(r.Verdict, "AAAA") {
		t.Errorf("verdict %q", r.Verdict)
	}
	for c := range codes(r) {
		if strings.HasPrefix(c, "ipv6-") {
			t.Errorf("IPv6 finding %s on a server reachable over IPv6", c)
		}
	}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Families []FamilyVerdict `json:"families"`
		Obs      struct {
			IPv6 struct {
				Server   string `json:"server"`
				Pinholes []any  `json:"pinholes_opened"`
			} `json:"ipv6"`
		} `json:"observations"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil || len(doc.Families) != 2 || doc.Obs.IPv6.Server != "2001:db8:2::2" || len(doc.Obs.IPv6.Pinholes) != 12 {
		t.Errorf("JSON %v: %+v", err, doc)
	}
	b.Reset()
	if err := r.WriteText(&b, false); err != nil || !strings.Contains(b.String(), "By address family:\n  ✗ IPv4  impossible") || !strings.Contains(b.String(), "  ✓ IPv6  reachable") {
		t.Errorf("text:\n%s", b.String())
	}
}

// TestIPv6Findings: each IPv6 failure names its cause, and none is
// reported where the checks did not run.
func TestIPv6Findings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(o *Observations)
		want   []string
		status string // of IPv6
	}{
		{"pinholes missing", func(o *Observations) {
			o.IPv6.Pinholes = nil
			o.IPv6.Outside.Outside = &probe.FTPResult{Reached: probe.Failed, ReachErr: "timed out"}
			for i := range o.IPv6.Outside.Passive {
				o.IPv6.Outside.Passive[i].Status = probe.Failed
			}
		}, []string{CodeIPv6ControlFiltered, CodeIPv6PassiveFiltered}, "unreachable"},
		{"pinholes for an old address", func(o *Observations) {
			for i := range o.IPv6.Pinholes {
				o.IPv6.Pinholes[i].Addr = addr("2001:db8:2::99")
			}
			o.IPv6.OtherPinholes, o.IPv6.Pinholes = o.IPv6.Pinholes, nil
			o.IPv6.Outside.Outside = &probe.FTPResult{Reached: probe.Failed, ReachErr: "timed out"}
		}, []string{CodeIPv6PinholeOther, CodeIPv6ControlFiltered}, "unreachable"},
		{"not listening on IPv6", func(o *Observations) {
			o.IPv6.Inside = &probe.FTPResult{Reached: probe.Failed, ReachErr: "connection refused"}
			o.IPv6.Outside = nil
		}, []string{CodeIPv6NotListening}, "unreachable"},
		{"EPSV refused", func(o *Observations) {
			o.IPv6.Inside.EPSV = &probe.Passive{Reply: "500 Unknown command", ParseError: "EPSV answered 500: 500 Unknown command"}
		}, []string{CodeIPv6EPSVRefused}, "unreachable"},
		{"firewall open", func(o *Observations) {
			o.IPv6.Outside.Canary.Unmapped.Status = probe.OK
		}, []string{CodeIPv6FirewallOpen}, "reachable"},
		{"no IPv6 address", func(o *Observations) {
			*o.IPv6 = IPv6Observations{ServerError: "no IPv6 default route"}
		}, []string{CodeIPv6NoAddress}, "unreachable"},
		{"no IPv6 reflector", func(o *Observations) {
			o.IPv6.Outside, o.IPv6.ReflectorError = nil, "no reflector with an IPv6 address was given"
		}, nil, "not-checked"},
		{"passive ports not all checked", func(o *Observations) {
			o.IPv6.Outside.Passive[3].Status = probe.Skipped
		}, nil, "not-checked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := cgnatWithIPv6()
			tc.change(o)
			r := Build(o)
			seen := codes(r)
			var got []string
			for c := range seen {
				if strings.HasPrefix(c, "ipv6-") {
					got = append(got, c)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("IPv6 findings %v, want %v", got, tc.want)
			}
			for _, c := range tc.want {
				if !seen[c] {
					t.Errorf("no %s in %v", c, got)
				}
			}
			if len(r.Families) != 2 || r.Families[1].Status != tc.status {
				t.Errorf("IPv6 verdict %+v, want %s", r.Families, tc.status)
			}
			if tc.name == "pinholes for an old address" {
				f := findingOf(r, CodeIPv6ControlFiltered)
				if f == nil || len(f.CausedBy) != 1 || f.CausedBy[0] != CodeIPv6PinholeOther {
					t.Errorf("the filtered port is not blamed on the old address: %+v", f)
				}
				if o := findingOf(r, CodeIPv6PinholeOther); o == nil || !strings.Contains(o.Summary, "2001:db8:2::99") || !strings.Contains(o.Fix, "natdoctor add --ipv6 21 42000-42010") {
					t.Errorf("%+v", o)
				}
			}
		})
	}
}

// TestNoIPv6NoFamilies: without --ipv6 the report is as before.
func TestNoIPv6NoFamilies(t *testing.T) {
	o := cgnatWithIPv6()
	o.IPv6 = nil
	if r := Build(o); r.Families != nil || strings.Contains(r.Verdict, "IPv") {
		t.Errorf("%+v %q", r.Families, r.Verdict)
	}
}
