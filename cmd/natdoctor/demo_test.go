package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
)

// TestDemo is `make demo`: the user's AirPort situation in the lab, and
// natdoctor finding it. It runs only with NATDOCTOR_DEMO=1, and fails when
// natdoctor does not find the conflict or does not pass once it is gone.
func TestDemo(t *testing.T) {
	if os.Getenv("NATDOCTOR_DEMO") != "1" {
		t.Skip("set NATDOCTOR_DEMO=1 (make demo)")
	}
	// An AirPort speaks NAT-PMP, not UPnP; its Default Host is on. The
	// server is set up as the field notes end: a fixed passive range, its
	// public address for PASV, and FTPS with a self-signed certificate.
	l := lab.Start(t, lab.Options{DefaultHost: true, NoUPnP: true, ForcePassiveIP: true, FTPTLS: 1})
	refl := l.StartReflector(t)
	fmt.Printf(`The lab (network namespaces on this machine, no link to any real network):

  outside host %-10s  runs the reflector: %s
       |
  router  WAN %-10s  nftables NAT + miniupnpd: NAT-PMP/PCP only, like an AirPort;
          LAN %-10s  "Default Host" (DMZ) on, pointing at %s
       |
  server      %-10s  Pure-FTPd, control port 21, passive range %d-%d (11 ports),
       |                  ForcePassiveIP %s, FTPS with a self-signed certificate
  other       %-10s  another machine with an FTP server (the default host)

The router's admin tool takes short port lists only, so the user mapped
the passive range as two NAT-PMP rules:
`, lab.OutsideAddr, refl, lab.WANAddr, lab.RouterLANAddr, lab.DefaultHostLAN, lab.ServerAddr, lab.PassiveLow, lab.PassiveHigh,
		lab.WANAddr, lab.DefaultHostLAN)
	for _, rule := range [][]string{{"add", "21", "42000-42005", "--via", "natpmp"}, {"add", "42006-42010", "--via", "natpmp"}} {
		fmt.Printf("\n$ natdoctor %s\n", strings.Join(rule, " "))
		out, errOut, code := l.Server.Natdoctor(t, rule...)
		fmt.Print(out, errOut)
		if code != exitOK {
			t.Fatalf("natdoctor %v: exit %d", rule, code)
		}
	}
	run := func(title string, want int) {
		fmt.Printf("\n===== %s =====\n$ natdoctor diagnose --pasv 42000-42010 --user %s --password-env FTP_PW --reflector %s\n\n", title, lab.FTPUser, refl)
		out, errOut, code := l.Server.NatdoctorEnv(t, []string{"FTP_PW=" + lab.FTPPassword}, "diagnose", "--pasv", "42000-42010",
			"--user", lab.FTPUser, "--password-env", "FTP_PW", "--reflector", refl)
		fmt.Print(out, errOut)
		fmt.Printf("(exit status %d)\n", code)
		if code != want {
			t.Errorf("%s: exit %d, want %d", title, code, want)
		}
	}
	run("the AirPort: Default Host on, NAT-PMP mappings present", exitProblem)
	l.SetDefaultHost(false)
	run("after turning Default Host off", exitOK)
	fmt.Println(`
What stays: ftp-tls-untrusted (info). A home server's certificate is self-signed;
clients ask once to accept it, and natdoctor prints its SHA-256 fingerprint to
compare. "Not checked: mappings" stays too: NAT-PMP cannot list mappings, so
they were checked from outside instead.`)
}
