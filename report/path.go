package report

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// lookupFailure says in a few words why the router's lookup failed.
func lookupFailure(err error) string {
	var ue *nat.UPnPError
	switch {
	case errors.As(err, &ue):
		return fmt.Sprintf("the router refused the lookup (UPnP error %d %s)", ue.Code, ue.Name())
	case errors.Is(err, nat.ErrNoResponse), errors.Is(err, context.DeadlineExceeded):
		return "the router did not answer the lookup in time"
	case errors.Is(err, nat.ErrServiceGone):
		return "nothing answers at the router's UPnP address any more"
	}
	return "the router's lookup failed"
}

// path draws the hops of a connection from outside.
func path(o *Observations) []Hop {
	var hops []Hop
	ext := ""
	if o.Discovery != nil {
		ext = addrOrEmpty(o.Discovery.ExternalAddr())
	}
	out := o.Outside
	reached := probe.Skipped
	detail := "not checked: needs --reflector"
	if out != nil && out.Outside != nil {
		reached = out.Outside.Reached
		detail = out.Outside.ReachErr
		switch reached {
		case probe.OK:
			detail = "answered through the reflector"
		case probe.Error:
			reached, detail = probe.Skipped, "not checked: "+detail
		}
	}
	pub := ext
	if out != nil && out.PublicAddr.IsValid() {
		pub = out.PublicAddr.String()
	}
	if pub == "" {
		pub = "?"
	}
	hops = append(hops, Hop{Name: fmt.Sprintf("internet -> router %s:%d", pub, o.ControlPort()), Status: reached, Detail: detail})

	mapHop := Hop{Name: fmt.Sprintf("mapping TCP %d -> %s:%d", o.ControlPort(), serverName(o.Server), o.FTPPort), Status: probe.Skipped, Detail: "the router cannot list mappings"}
	switch {
	case o.Discovery == nil:
		mapHop.Detail = "the router could not be asked"
	case o.Discovery.UPnP.Device != nil && (o.MappingsError != nil || o.MappingsErr != ""):
		mapHop.Detail = lookupFailure(o.MappingsError)
	}
	if o.MappingsKnown {
		mapHop.Status, mapHop.Detail = probe.Failed, "not mapped"
		for _, m := range o.Mappings {
			if m.Protocol == nat.TCP && m.ExternalPort == o.ControlPort() {
				if m.InternalAddr == o.Server {
					mapHop.Status, mapHop.Detail = probe.OK, fmt.Sprintf("%q, lease %s", m.Description, leaseText(m.Lease))
				} else {
					mapHop.Detail = fmt.Sprintf("points at %s:%d", m.InternalAddr, m.InternalPort)
				}
			}
		}
	}
	hops = append(hops, mapHop)

	srv := Hop{Name: fmt.Sprintf("server %s:%d", serverName(o.Server), o.FTPPort), Status: probe.Skipped, Detail: "not checked from outside"}
	if out != nil && out.SameServer.Known() {
		srv.Status, srv.Detail = probe.Failed, "another machine answers from outside"
		if out.SameServer == check.Yes {
			srv.Status, srv.Detail = probe.OK, "the same server answers inside and outside"
		}
	}
	hops = append(hops, srv)

	pasv := Hop{Name: "passive ports", Status: probe.Skipped, Detail: "not checked from outside"}
	if o.Passive != nil {
		pasv.Name = "passive ports " + o.Passive.String()
	}
	if out != nil && len(out.Passive) > 0 {
		var dead, skipped []uint16
		for _, p := range out.Passive {
			switch p.Status {
			case probe.Failed:
				dead = append(dead, p.Port)
			case probe.Skipped, probe.Error:
				skipped = append(skipped, p.Port)
			}
		}
		pasv.Status, pasv.Detail = probe.OK, "every port reached this server"
		if len(skipped) == len(out.Passive) {
			pasv.Status, pasv.Detail = probe.Skipped, "not checked from outside"
		}
		if len(dead) > 0 {
			pasv.Status, pasv.Detail = probe.Failed, "dead: "+nat.CompressPorts(dead)
		}
		if len(skipped) > 0 && len(skipped) < len(out.Passive) {
			pasv.Detail += "; not checked: " + nat.CompressPorts(skipped)
		}
	}
	hops = append(hops, pasv)
	return hops
}

func leaseText(d time.Duration) string {
	if d == 0 {
		return "permanent"
	}
	return d.String()
}

// serverName is the server's address, or "this host" when it is unknown.
func serverName(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return "this host"
}

// bannerOf returns r's greeting, or nothing for an FTP check that did not run.
func bannerOf(r *probe.FTPResult) []string {
	if r == nil {
		return nil
	}
	return r.Banner
}
