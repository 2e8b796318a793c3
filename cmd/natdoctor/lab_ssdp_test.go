package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
)

// discoverIgnored is the part of discover's JSON these tests read beyond
// discoverJSON: the Location used and the SSDP answers set aside.
type discoverIgnored struct {
	UPnP struct {
		Device struct {
			Location string `json:"location"`
		} `json:"device"`
		Ignored []string `json:"ignored"`
	} `json:"upnp"`
}

func labDiscoverIgnored(t *testing.T, l *lab.Lab) (discoverJSON, discoverIgnored, string) {
	t.Helper()
	out, errOut, code := l.Server.Natdoctor(t, "discover", "--json", "-v")
	var d discoverJSON
	var ig discoverIgnored
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("discover --json (exit %d): %v\n%s\n%s", code, err, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), &ig); err != nil {
		t.Fatal(err)
	}
	return d, ig, out + errOut
}

// TestLabDiscoverSSDPPaths: routers answer M-SEARCH on one path only
// (eero answers multicast only; others unicast only). natdoctor asks on
// both, so it finds the real miniupnpd either way; the router's counted
// drop rule shows natdoctor's datagrams on the other path were really
// dropped, and upnpc (multicast only) is the witness of what a client
// asking on one path sees.
func TestLabDiscoverSSDPPaths(t *testing.T) {
	t.Parallel()
	for _, only := range []string{lab.SSDPMulticastOnly, lab.SSDPUnicastOnly} {
		t.Run(only, func(t *testing.T) {
			t.Parallel()
			l := lab.Start(t, lab.Options{})
			l.RouterSSDP(only)
			d, _, out := labDiscoverIgnored(t, l)
			if d.UPnP.Status != "ok" || d.UPnP.Device.FriendlyName != lab.RouterFriendly {
				t.Errorf("router answering %s not found: upnp %+v\n%s", only, d.UPnP, out)
			}
			if n := l.DroppedSSDP(); n == 0 {
				t.Errorf("the router's drop rule saw nothing of natdoctor's M-SEARCH: the other path was not tested")
			}
			_, err := l.Server.Run("upnpc", "-s")
			switch {
			case only == lab.SSDPMulticastOnly && err != nil:
				t.Errorf("upnpc (multicast) failed on a router answering multicast: %v", err)
			case only == lab.SSDPUnicastOnly && err == nil:
				t.Errorf("upnpc (multicast) found a router that hears no multicast: the lab's rule does not hold")
			}
		})
	}
}

// TestLabDiscoverOtherIGDOnTheLAN: another LAN host claims to be an IGD
// (an access point, a second firewall) and answers multicast M-SEARCH at
// once, while miniupnpd delays its multicast answer (up to MX). natdoctor
// uses the gateway's IGD and says it set the other aside; upnpc, which
// takes the first answer, is the witness that the other's answer was
// there to be taken.
func TestLabDiscoverOtherIGDOnTheLAN(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	loc := l.StartOtherIGD(l.Other)
	// Unicast to the router is dropped, so the router's answer is its
	// delayed multicast one, as on a router that answers multicast only.
	l.RouterSSDP(lab.SSDPMulticastOnly)
	d, ig, out := labDiscoverIgnored(t, l)
	if d.UPnP.Status != "ok" || d.UPnP.Device.FriendlyName != lab.RouterFriendly ||
		!strings.Contains(ig.UPnP.Device.Location, lab.RouterLANAddr.String()) {
		t.Fatalf("natdoctor did not use the gateway's IGD: location %q, upnp %+v\n%s", ig.UPnP.Device.Location, d.UPnP, out)
	}
	b, err := os.ReadFile(l.OtherIGDLog(l.Other))
	if err != nil || !strings.Contains(string(b), "answered "+lab.ServerAddr.String()) {
		t.Fatalf("the other IGD answered no M-SEARCH of the server: %v\n%s", err, b)
	}
	if len(ig.UPnP.Ignored) == 0 {
		// The router's random delay can be near zero; then natdoctor
		// stopped reading before the other's answer arrived.
		t.Logf("the router answered first this time; nothing to set aside")
	} else if !strings.Contains(strings.Join(ig.UPnP.Ignored, "\n"), loc) {
		t.Errorf("ignored answers do not name the other IGD %s: %q", loc, ig.UPnP.Ignored)
	}
	peer, _ := l.Server.Run("upnpc", "-s")
	t.Logf("upnpc -s with two IGDs on the LAN:\n%s", firstLines(peer, 12))
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
