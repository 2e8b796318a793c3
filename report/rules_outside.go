package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// Finding codes of these rules: a public contract, documented in README.
const (
	CodeDefaultHost     = "default-host-override"
	CodeThisHostDefault = "this-host-is-default-host"
	CodePASVUnreachable = "pasv-port-unreachable"
	CodeHairpin         = "hairpin-unsupported"
	CodeOutsideOK       = "outside-reachable"
)

var _ = catalogue([]Entry{
	{Code: CodeDefaultHost, Severity: SevError,
		Example: "from outside, mapped ports reach another machine than this server: a default host (DMZ) overrides the port mappings",
		Fix:     "turn Default Host / DMZ off (the router's own menu is named)"},
	{Code: CodeThisHostDefault, Severity: SevWarning,
		Example: "this host is the router's default host (DMZ): every port of it is exposed",
		Fix:     "map the ports first (it names those only the default host carries), then turn the default host off"},
	{Code: CodePASVUnreachable, Severity: SevError,
		Example: "from outside, passive ports 42006-42010 do not reach this server",
		Fix:     "map them (a port lost between two rules looks like this)",
		After:   []string{CodeDefaultHost, CodeMappingWrongHost, CodeMappingMissing, CodeNoPassiveRange, CodePASVOutsideRange, CodeFTPUnreachable}},
	{Code: CodeHairpin, Severity: SevInfo,
		Example: "the router does not loop connections to its public address back to the LAN",
		Fix:     "informational; check from outside with a reflector"},
	{Code: CodeOutsideOK, Severity: SevOK,
		Example: "from outside, 11.0.0.1:21 reaches this server",
		Fix:     "—"},
})

// outside judges the checks from outside: the walk through the reflector,
// the passive ports, the canaries, the hairpin.
func (b *builder) outside() {
	o := b.o
	out := o.Outside
	if out == nil {
		b.noReflector()
		return
	}
	if out.PublicError != "" {
		b.skip("outside", "from outside: the reflector did not answer: "+out.PublicError)
		return
	}
	b.outsideControl()
	b.thisHostDefault()
	dead := b.outsidePassive()
	if out.SameServer == check.Yes && len(dead) == 0 && out.Outside != nil && out.Outside.Reached == probe.OK && out.Outside.List != probe.Failed {
		b.add(Finding{
			Code: CodeOutsideOK, Severity: SevOK,
			Summary:  fmt.Sprintf("from outside, %s:%d reaches this server", out.PublicAddr, o.ControlPort()),
			Evidence: map[string]any{"banner_outside": out.Outside.Banner, "login": string(out.Outside.Login), "list": string(out.Outside.List)},
		})
	}
}

// noReflector lists what only a reflector can check, and says what the
// hairpin check showed.
func (b *builder) noReflector() {
	o := b.o
	b.skip("outside-control-port", "from outside: port "+fmt.Sprint(o.ControlPort())+" reaches this server (needs --reflector URL)")
	b.skip("outside-passive-ports", "from outside: every passive port carries a data connection (needs --reflector)")
	b.skip("outside-default-host", "from outside: default host (DMZ) overriding the mappings (needs --reflector)")
	if o.HairpinStatus != "" && o.HairpinStatus != probe.OK && o.HairpinStatus != probe.Skipped {
		b.add(Finding{
			Code: CodeHairpin, Severity: SevInfo,
			Summary:     "the router does not loop connections to its public address back to the LAN (hairpin NAT)",
			Evidence:    map[string]any{"hairpin": hairpinEvidence(o.Hairpin)},
			Explanation: "From inside, the public address does not lead to the server. That alone says nothing about the outside: many routers do not hairpin. Check from outside with a reflector.",
			Fix:         "Run `natdoctor reflector` on a machine outside and pass --reflector http://HOST:8021.",
		})
	}
}

// outsideControl judges the control port from outside: unreachable,
// another machine (a default host, or a rule to the wrong host), a login
// refused there.
func (b *builder) outsideControl() {
	o := b.o
	out := o.Outside
	same := out.SameServer
	if out.Outside != nil && out.Outside.Reached == probe.Error {
		b.skip("outside-control-port", "from outside: the control port (the reflector could not check it: "+out.Outside.ReachErr+")")
	} else if out.Outside != nil && out.Outside.Reached != probe.OK {
		b.add(Finding{
			Code: CodeFTPUnreachable, Severity: SevError,
			Summary:     fmt.Sprintf("from outside, %s:%d does not answer: %s", out.PublicAddr, o.ControlPort(), out.Outside.ReachErr),
			Evidence:    map[string]any{"public_address": out.PublicAddr.String(), "error": out.Outside.ReachErr},
			Explanation: "The server works on the LAN, but a connection from the internet to the public address does not get through.",
			Fix:         "Map the control port: natdoctor add " + portsArg(o),
		})
	}
	canaryOther := out.Canary != nil && out.Canary.MappingsReachHere == check.No
	canaryHere := out.Canary != nil && out.Canary.MappingsReachHere == check.Yes
	// Another machine on port 21 is a default host only when the mappings
	// do not explain it: a canary mapped here that arrives here proves
	// mappings are followed, and a listing that maps 21 elsewhere names
	// the real cause (mapping-wrong-host).
	dmz := canaryOther || same == check.No && !canaryHere && !b.controlElsewhere
	if same == check.No && !dmz {
		if !b.controlElsewhere {
			b.add(Finding{
				Code: CodeMappingWrongHost, Severity: SevError,
				Summary: fmt.Sprintf("from outside, port %d reaches another machine, though mappings to this host work", o.ControlPort()),
				Evidence: omitEmpty(map[string]any{"banner_inside": strings.Join(bannerOf(o.Inside), " | "),
					"banner_outside": strings.Join(bannerOf(out.Outside), " | "), "canary": "reached this host"}),
				Explanation: "A canary port mapped to this host reached it, so the router follows mappings; port " + fmt.Sprint(o.ControlPort()) +
					" itself is forwarded to another machine (an old rule, a stale DHCP lease, a typo).",
				Fix: fmt.Sprintf("Point the rule for port %d at %s: natdoctor add %s --force. Or fix it in %s.", o.ControlPort(), o.Server, portsArg(o), o.routerPlace("forward")),
			})
		}
	} else if dmz {
		ev := map[string]any{}
		if o.Inside != nil {
			ev["banner_inside"] = o.Inside.Banner
		}
		if out.Outside != nil {
			ev["banner_outside"] = out.Outside.Banner
			ev["login_outside"] = fmt.Sprintf("%s %d", out.Outside.Login, out.Outside.LoginCode)
		}
		if out.Canary != nil {
			ev["canary"] = out.Canary.Mapped
		}
		b.add(Finding{
			Code: CodeDefaultHost, Severity: SevError,
			Summary:  "from outside, mapped ports reach another machine than this server: a default host (DMZ) overrides the port mappings",
			Evidence: ev,
			Explanation: "The router sends inbound connections to its default host (DMZ) instead of following the port mappings — " +
				"the Apple AirPort \"Default Host\" + NAT-PMP conflict. Clients meet another server, or none: " +
				"\"authentication keeps failing\" or \"the server hangs\".",
			Fix: "Turn the default host off, or point it at " + o.Server.String() + ", in " + o.routerPlace("dmz") + ". Then run diagnose again.",
		})
	}
	if out.Outside != nil && out.Outside.Reached == probe.OK && out.Outside.Login == probe.Failed {
		b.add(loginFailed(out.Outside, same == check.No, "from outside"))
	}
}

// thisHostDefault reports an unmapped port that reached this host: it is
// the router's default host.
func (b *builder) thisHostDefault() {
	o := b.o
	out := o.Outside
	if c := out.Canary; c != nil && c.ThisHostIsDefault == check.Yes {
		f := Finding{
			Code: CodeThisHostDefault, Severity: SevWarning,
			Summary:     "this host is the router's default host (DMZ): every port of it is exposed to the internet",
			Evidence:    map[string]any{"unmapped_port": c.Unmapped.Port, "outcome": c.Unmapped.Outcome},
			Explanation: "An unmapped port reached this host from outside: the router forwards everything here, so every service on this machine is reachable from the internet.",
			Fix:         "Turn the default host off, in " + o.routerPlace("dmz") + ", and map only the ports the server needs.",
		}
		if c.MappingsReachHere == check.Yes {
			f.Explanation += " A canary port mapped to this host reached it too: the router follows mappings."
		}
		if len(b.unmappedButDefault) > 0 {
			ports := nat.CompressPorts(b.unmappedButDefault)
			f.Evidence["unmapped_needed_ports"] = ports
			f.Explanation += " The server works from outside only because of it: TCP " + ports + " are not mapped, so turning the default host off breaks the server until they are."
			f.Fix = "First map the ports: natdoctor add " + portsArg(o) + ". Then turn the default host off, in " + o.routerPlace("dmz") + "."
		}
		b.add(f)
	}
}

// outsidePassive judges the passive ports from outside and returns those
// that do not reach this server.
func (b *builder) outsidePassive() []uint16 {
	o := b.o
	out := o.Outside
	var dead []uint16
	served := o.servedPassive()
	var unchecked []uint16
	why := ""
	for _, p := range out.Passive {
		switch {
		case p.Status == probe.Error:
			unchecked, why = append(unchecked, p.Port), p.Detail // the check could not run: nothing known
		case p.Status == probe.Failed && (served == nil || served.Contains(p.Port)):
			dead = append(dead, p.Port)
		}
	}
	if len(unchecked) > 0 {
		b.skip("outside-passive-ports", fmt.Sprintf("from outside: passive ports %s (the reflector could not check them: %s)", nat.CompressPorts(unchecked), why))
	}
	if out.Outside != nil {
		// A transfer that failed on a port the port check proved to reach
		// this host is no unreachable port (pyftpdlib hands EPSV the port
		// PASV just used, and the relayed second transfer can come back
		// empty): the port check is the authority on reachability.
		reached := map[uint16]bool{}
		for _, p := range out.Passive {
			reached[p.Port] = p.Status == probe.OK
		}
		for _, p := range out.Outside.DeadPorts() {
			if !slices.Contains(dead, p) && !reached[p] {
				dead = append(dead, p)
			}
		}
	}
	if len(dead) > 0 {
		fix := "natdoctor add " + nat.CompressPorts(dead) + ". Or fix the rules in " + o.routerPlace("forward") + "."
		outcomes := map[string][]uint16{}
		for _, p := range out.Passive {
			if p.Status == probe.Failed {
				outcomes[p.Outcome] = append(outcomes[p.Outcome], p.Port)
			}
		}
		byOutcome := map[string]any{}
		for k, v := range outcomes {
			byOutcome[k] = nat.CompressPorts(v)
		}
		b.add(Finding{
			Code: CodePASVUnreachable, Severity: SevError,
			Summary:  fmt.Sprintf("from outside, passive ports %s do not reach this server", nat.CompressPorts(dead)),
			Evidence: map[string]any{"ports": nat.CompressPorts(dead), "outcomes": byOutcome},
			Explanation: "Logins work but listings and transfers fail whenever the server picks one of these ports — one time in " +
				fmt.Sprint(max(1, rangeSize(o.Passive))) + " per dead port, at random. A port forgotten between two router rules looks exactly like this.",
			Fix: fix,
		})
	}
	if o.Passive == nil {
		b.skip("outside-passive-ports", "from outside: passive ports (the passive range is unknown: give --pasv or --ftp-config)")
	}
	return dead
}

func hairpinEvidence(r *probe.FTPResult) map[string]any {
	if r == nil {
		return nil
	}
	return map[string]any{"target": r.Target, "reached": string(r.Reached), "error": r.ReachErr, "banner": r.Banner}
}
