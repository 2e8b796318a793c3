package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/internal/iostreams"
	"github.com/natdoctor/natdoctor/nat"
)

// parsed runs args through the real command tree with one command built
// by newCmd around a runF that keeps the options instead of running: what
// the command would run with, without a router, a server or a network.
func parsed[T any](t *testing.T, newCmd func(*globalOptions, func(context.Context, *T) error) *cobra.Command, args ...string) (*T, int, string) {
	t.Helper()
	ios, _, _, errOut := iostreams.Test()
	var g *globalOptions
	root := newCmdRoot(ios, func(o *globalOptions) { g = o })
	var got *T
	var budget time.Duration
	cmd := newCmd(g, func(ctx context.Context, o *T) error {
		got = o
		if d, ok := ctx.Deadline(); ok {
			budget = time.Until(d)
		}
		return nil
	})
	parent := root
	if cmd.Name() == "ftp" {
		parent, _, _ = root.Find([]string{"probe"})
	}
	if old, _, err := parent.Find([]string{cmd.Name()}); err == nil && old != parent {
		parent.RemoveCommand(old)
	}
	parent.AddCommand(cmd)
	root.SetArgs(args)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	code := reportExit(context.Background(), ios, root.ExecuteContext(context.Background()))
	if got != nil && budget <= 0 && cmd.Name() != "keep" && cmd.Name() != "reflector" && cmd.Name() != "version" && cmd.Name() != "man" {
		t.Errorf("%v: runs without a time budget", args)
	}
	return got, code, errOut.String()
}

func TestAddParses(t *testing.T) {
	o, code, errOut := parsed(t, newCmdAdd, "add", "21", "42000-42010", "8021:21", "--to", "10.0.1.5", "--lease", "2h", "--udp", "--dry-run")
	if code != exitOK || o == nil {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := []nat.PortPair{{External: 21, Internal: 21}}
	if !slices.Equal(o.pairs[:1], want) || len(o.pairs) != 13 || o.pairs[12] != (nat.PortPair{External: 8021, Internal: 21}) {
		t.Errorf("pairs %v", o.pairs)
	}
	if o.to != netip.MustParseAddr("10.0.1.5") || o.lease != 2*time.Hour || !o.dryRun || !slices.Contains(o.protocols(), nat.UDP) {
		t.Errorf("options %+v", o)
	}
	for _, bad := range [][]string{{"add", "0"}, {"add", "21", "--lease", "-1h"}, {"add", "21", "--to", "::1"}, {"add"}} {
		if o, code, _ := parsed(t, newCmdAdd, bad...); code != exitUsage || o != nil {
			t.Errorf("%v: exit %d, ran %v", bad, code, o != nil)
		}
	}
}

func TestRemoveAndKeepParse(t *testing.T) {
	r, code, errOut := parsed(t, newCmdRemove, "remove", "42000-42002", "--force")
	if code != exitOK || r == nil || len(r.pairs) != 3 || !r.force {
		t.Fatalf("remove: exit %d %+v %s", code, r, errOut)
	}
	k, code, errOut := parsed(t, newCmdKeep, "keep", "21", "--check", "10s", "--leave")
	if code != exitOK || k == nil || k.check != 10*time.Second || !k.leave || len(k.pairs) != 1 {
		t.Fatalf("keep: exit %d %+v %s", code, k, errOut)
	}
	if k, code, _ := parsed(t, newCmdKeep, "keep", "21", "--check", "-1s"); code != exitUsage || k != nil {
		t.Errorf("keep --check -1s: exit %d", code)
	}
}

func TestDiagnoseParses(t *testing.T) {
	t.Setenv("ND_TEST_PW", "secret")
	o, code, errOut := parsed(t, newCmdDiagnose, "diagnose", "--pasv", "42000-42010", "--server", "10.0.1.2", "--user", "alice",
		"--password-env", "ND_TEST_PW", "--reflector", "http://192.0.2.9:8021", "--format", "markdown", "--gateway", "10.0.1.1")
	if code != exitOK || o == nil {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	c := o.check
	if c.Passive == nil || c.Passive.String() != "42000-42010" || c.Server != netip.MustParseAddr("10.0.1.2") || c.FTP.User != "alice" ||
		c.FTP.Password != "secret" || c.Reflector == nil || o.output != "markdown" || c.NAT.Gateway != netip.MustParseAddr("10.0.1.1") {
		t.Errorf("parsed %+v", c)
	}
	if o, _, _ := parsed(t, newCmdDiagnose, "diagnose", "--format", "yaml", "--json"); o == nil || o.output != "json" {
		t.Errorf("--json overrides --format")
	}
	for _, bad := range [][]string{{"diagnose", "--format", "yaml"}, {"diagnose", "--server", "::1"}, {"diagnose", "--ftp-port", "0"},
		{"diagnose", "--pasv", "9-1"}, {"diagnose", "--reflector", "ftp://x"}} {
		if o, code, _ := parsed(t, newCmdDiagnose, bad...); code != exitUsage || o != nil {
			t.Errorf("%v: exit %d, ran %v", bad, code, o != nil)
		}
	}
}

// TestDiagnoseIPv6Parses: --reflector twice sorts the URLs by family, a
// name serves both, and IPv6 input without --ipv6 (or not IPv6) is a
// usage error before anything is sent.
func TestDiagnoseIPv6Parses(t *testing.T) {
	o, code, errOut := parsed(t, newCmdDiagnose, "diagnose", "--ipv6", "--reflector", "http://[2001:db8:1::2]:8021",
		"--reflector", "http://192.0.2.9:8021", "--server6", "2001:db8:2::2")
	if code != exitOK || o == nil {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if c := o.check; !c.IPv6 || c.Reflector == nil || c.Reflector.Base.Host != "192.0.2.9:8021" || c.Reflector6 == nil ||
		c.Reflector6.Base.Host != "[2001:db8:1::2]:8021" || c.Server6 != netip.MustParseAddr("2001:db8:2::2") {
		t.Errorf("parsed %+v", c)
	}
	o, code, _ = parsed(t, newCmdDiagnose, "diagnose", "--ipv6", "--reflector", "http://reflector.example:8021")
	if code != exitOK || o.check.Reflector == nil || o.check.Reflector6 == nil {
		t.Errorf("a name: exit %d, %+v", code, o)
	}
	for _, bad := range [][]string{
		{"diagnose", "--reflector", "http://[2001:db8:1::2]:8021"}, // IPv6 without --ipv6
		{"diagnose", "--server6", "2001:db8:2::2"},
		{"diagnose", "--ipv6", "--server6", "10.0.1.2"},
		{"diagnose", "--ipv6", "--server6", "fe80::2%eth0"},
		{"diagnose", "--ipv6", "--server6", "fe80::2"},
		{"diagnose", "--ipv6", "--reflector", "http://192.0.2.9:8021", "--reflector", "http://192.0.2.10:8021"},
		{"diagnose", "--ipv6", "--reflector", "http://a.example", "--reflector", "http://[2001:db8::1]"},
		{"diagnose", "--ipv6", "--reflector", "http://a", "--reflector", "http://b", "--reflector", "http://c"},
	} {
		if o, code, _ := parsed(t, newCmdDiagnose, bad...); code != exitUsage || o != nil {
			t.Errorf("%v: exit %d, ran %v", bad, code, o != nil)
		}
	}
}

// TestIPv6WhereIPv4IsMeant: an IPv6 address given to a flag that takes
// IPv4 says what to do instead, and nothing runs.
func TestIPv6WhereIPv4IsMeant(t *testing.T) {
	if o, code, errOut := parsed(t, newCmdDiscover, "discover", "--gateway", "fe80::1%eth0"); code != exitUsage || o != nil || !strings.Contains(errOut, "IPv6 default route") {
		t.Errorf("--gateway fe80::1%%eth0: exit %d: %s", code, errOut)
	}
	if o, code, errOut := parsed(t, newCmdAdd, "add", "21", "--to", "2001:db8::5"); code != exitUsage || o != nil || !strings.Contains(errOut, "add --ipv6 on 2001:db8::5") {
		t.Errorf("--to 2001:db8::5: exit %d: %s", code, errOut)
	}
}

// TestIPv6RouterFollowsGateway: with --gateway the routing table's IPv6
// router is not used (tests give loopback fakes that way, and the
// machine's own IPv6 router is nobody's to ask); --gateway6 names it.
func TestIPv6RouterFollowsGateway(t *testing.T) {
	o, code, errOut := parsed(t, newCmdDiscover, "discover", "--gateway", "127.0.0.1")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if a, err := o.g.ipv6Router(); err == nil || !strings.Contains(err.Error(), "--gateway6") {
		t.Errorf("ipv6Router with --gateway only = %v, %v", a, err)
	}
	o, code, errOut = parsed(t, newCmdDiscover, "discover", "--gateway", "127.0.0.1", "--gateway6", "fe80::1%lo")
	if a, err := o.g.ipv6Router(); code != exitOK || err != nil || a.String() != "fe80::1%lo" {
		t.Errorf("--gateway6 fe80::1%%lo: exit %d %s: %v, %v", code, errOut, a, err)
	}
	for _, bad := range []string{"10.0.1.1", "fe80::1", "nonsense"} {
		if o, code, _ := parsed(t, newCmdDiscover, "discover", "--gateway6", bad); code != exitUsage || o != nil {
			t.Errorf("--gateway6 %s: exit %d", bad, code)
		}
	}
}

func TestOtherCommandsParse(t *testing.T) {
	if o, code, _ := parsed(t, newCmdList, "list", "--page-size", "25"); code != exitOK || o == nil || o.page != 25 {
		t.Errorf("list: exit %d %+v", code, o)
	}
	if o, code, _ := parsed(t, newCmdList, "list", "--page-size", "0"); code != exitUsage || o != nil {
		t.Errorf("list --page-size 0: exit %d", code)
	}
	if o, code, _ := parsed(t, newCmdDiscover, "discover", "--gateway", "10.0.1.1"); code != exitOK || o == nil || o.g.Gateway != netip.MustParseAddr("10.0.1.1") {
		t.Errorf("discover: exit %d", code)
	}
	if o, code, _ := parsed(t, newCmdProbeFTP, "probe", "ftp", "10.0.1.2:2121", "--anonymous", "--pasv", "42000-42010", "--samples", "5"); code != exitOK || o == nil ||
		o.target != "10.0.1.2:2121" || !o.walk.Anonymous || o.walk.Samples != 5 || o.expected == nil || o.expected.Low != 42000 {
		t.Errorf("probe ftp: exit %d %+v", code, o)
	}
	if o, code, _ := parsed(t, newCmdProbeFTP, "probe", "ftp", "10.0.1.2", "--samples", "65"); code != exitUsage || o != nil {
		t.Errorf("probe ftp --samples 65: exit %d", code)
	}
	if o, code, _ := parsed(t, newCmdReflector, "reflector", "--listen", "127.0.0.1:8021", "--trusted-proxy", "10.0.0.1", "--allow-private"); code != exitOK || o == nil ||
		!o.server.AllowPrivate || len(o.server.TrustedProxies) != 1 || o.server.TrustedProxies[0] != netip.MustParsePrefix("10.0.0.1/32") {
		t.Errorf("reflector: exit %d %+v", code, o)
	}
	if o, code, _ := parsed(t, newCmdReflector, "reflector", "--burst", "100", "--rate", "0.5"); code != exitOK || o == nil ||
		o.server.Limits.PerSourceBurst != 100 || o.server.Limits.PerSourceRate != 0.5 {
		t.Errorf("reflector --burst --rate: exit %d", code)
	}
	if o, code, _ := parsed(t, newCmdReflector, "reflector", "--rate", "0"); code != exitUsage || o != nil {
		t.Errorf("reflector --rate 0: exit %d", code)
	}
	if o, code, _ := parsed(t, newCmdReflector, "reflector", "--trusted-proxy", "nope"); code != exitUsage || o != nil {
		t.Errorf("reflector --trusted-proxy nope: exit %d", code)
	}
	if o, code, _ := parsed(t, newCmdVersion, "version"); code != exitOK || o == nil {
		t.Errorf("version: exit %d", code)
	}
	if o, code, _ := parsed(t, newCmdMan, "man", t.TempDir()); code != exitOK || o == nil || o.root == nil {
		t.Errorf("man: exit %d", code)
	}
}

func TestCheckParses(t *testing.T) {
	o, code, errOut := parsed(t, newCmdCheck, "check", "22", "8443:443", "51820/udp", "--service", "minecraft", "--server", "10.0.1.5",
		"--reflector", "http://192.0.2.1:8021", "--name", "nas.example.org")
	if code != exitOK || o == nil {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got []string
	for _, p := range o.opts.Ports {
		got = append(got, p.String()+"="+string(p.Kind))
	}
	want := []string{"22/tcp=ssh", "8443:443/tcp=tls", "51820/udp=udp-silent", "25565/tcp=tcp"}
	if !slices.Equal(got, want) {
		t.Errorf("ports %v, want %v", got, want)
	}
	if o.opts.Server != netip.MustParseAddr("10.0.1.5") || o.opts.Reflector == nil || o.opts.Name != "nas.example.org" {
		t.Errorf("options %+v", o.opts)
	}
	for _, bad := range [][]string{{"check"}, {"check", "22/sctp"}, {"check", "0"}, {"check", "--service", "gopher"},
		{"check", "22", "ssh"}, {"check", "22", "--server", "::1"}, {"check", "22", "--reflector", "ftp://x"},
		{"check", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17"},
		{"check", "22", "--ipv6"}, {"check", "22", "--ipv6", "--reflector", "http://192.0.2.1:8021"},
		{"check", "22", "--ipv6", "--reflector", "http://[2001:db8::1]:8021", "--server", "10.0.1.2"},
		{"check", "22", "--ipv6", "--reflector", "http://[2001:db8::1]:8021", "--server", "fe80::1%eth0"},
		{"check", "22", "--server", "2001:db8::2"}} {
		if o, code, _ := parsed(t, newCmdCheck, bad...); code != exitUsage || o != nil {
			t.Errorf("%v: exit %d, ran %v", bad, code, o != nil)
		}
	}
}

func TestCheckIPv6Parses(t *testing.T) {
	o, code, errOut := parsed(t, newCmdCheck, "check", "ssh", "--ipv6", "--reflector", "http://[2001:db8:1::2]:8021", "--server", "2001:db8:2::2")
	if code != exitOK || o == nil || !o.opts.IPv6 || o.opts.Server != netip.MustParseAddr("2001:db8:2::2") {
		t.Fatalf("exit %d %+v: %s", code, o, errOut)
	}
}

func TestServiceFlagMaps(t *testing.T) {
	o, code, errOut := parsed(t, newCmdAdd, "add", "--service", "wireguard", "--service", "ssh", "--dry-run")
	if code != exitOK || o == nil {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	reqs := o.requests(o.pairs, netip.MustParseAddr("10.0.1.2"), time.Hour, "")
	var got []string
	for _, r := range reqs {
		got = append(got, fmt.Sprintf("%s %d->%d %s", r.Protocol, r.ExternalPort, r.InternalPort, r.Description))
	}
	want := []string{"UDP 51820->51820 natdoctor wireguard 51820/udp", "TCP 22->22 natdoctor ssh 22/tcp"}
	if !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	// PORTS and a service that names the same port: mapped once.
	k, code, _ := parsed(t, newCmdKeep, "keep", "22", "--service", "ssh")
	if code != exitOK || len(k.requests(k.pairs, netip.MustParseAddr("10.0.1.2"), time.Hour, "")) != 1 {
		t.Errorf("keep 22 --service ssh: exit %d", code)
	}
	if r, code, _ := parsed(t, newCmdRemove, "remove", "--service", "gopher"); code != exitUsage || r != nil {
		t.Errorf("remove --service gopher: exit %d", code)
	}
	if r, code, _ := parsed(t, newCmdRemove, "remove"); code != exitUsage || r != nil {
		t.Errorf("remove without ports: exit %d", code)
	}
}
