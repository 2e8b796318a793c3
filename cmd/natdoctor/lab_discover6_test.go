package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
)

// TestLabDiscoverIPv6: discover searches for the router's IGD over IPv6
// too (SSDP on [FF02::C] and [FF05::C], unicast to the IPv6 router), after
// the IPv4 search; upnpc -6 on the same host decides what is there.
func TestLabDiscoverIPv6(t *testing.T) {
	lab.Skip(t)
	for _, opts := range []lab.Options{{IPv6: true, NoOtherFTP: true}, {IPv6: true, NoOtherFTP: true, NoUPnP: true}} {
		t.Run(fmt.Sprintf("NoUPnP=%v", opts.NoUPnP), func(t *testing.T) {
			t.Parallel()
			discoverIPv6(t, opts)
		})
	}
}

func discoverIPv6(t *testing.T, opts lab.Options) {
	l := lab.Start(t, opts)
	peer, err := l.Server.Run("upnpc", "-6", "-s")
	t.Logf("upnpc -6 -s:\n%s", peer)
	out, errOut, code := l.Server.Natdoctor(t, "discover", "--json")
	if code != exitOK {
		t.Fatalf("discover: exit %d\n%s%s", code, out, errOut)
	}
	var d discoverOutput
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if d.UPnPIPv6 == nil {
		t.Fatalf("no SSDP search over IPv6 on a host with an IPv6 default route:\n%s", out)
	}
	found := err == nil && strings.Contains(peer, "desc: http://[")
	if found != !opts.NoUPnP {
		t.Errorf("upnpc -6 found an IGD over IPv6: %v, with NoUPnP=%v: the lab is wrong", found, opts.NoUPnP)
	}
	if found != (d.UPnPIPv6.Error == "") {
		t.Errorf("upnpc -6 found an IGD over IPv6: %v; natdoctor: %+v", found, d.UPnPIPv6)
	}
	if found && !strings.Contains(peer, d.UPnPIPv6.Location) {
		t.Errorf("natdoctor's Location %s is not upnpc's:\n%s", d.UPnPIPv6.Location, peer)
	}
	t.Logf("natdoctor: %+v", d.UPnPIPv6)
}
