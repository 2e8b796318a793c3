package lab

import (
	"fmt"
	"strings"
	"testing"
)

// These tests prove the lab itself with third-party clients only.

func mapWithNatpmpc(t *testing.T, l *Lab, ports ...int) {
	t.Helper()
	for _, p := range ports {
		out := l.Server.MustRun(t, "natpmpc", "-a", fmt.Sprint(p), fmt.Sprint(p), "tcp", "300")
		if !strings.Contains(out, "Mapped public port") {
			t.Fatalf("natpmpc did not map %d:\n%s", p, out)
		}
	}
}

func ftpPorts() []int {
	ports := []int{21}
	for p := PassiveLow; p <= PassiveHigh; p++ {
		ports = append(ports, p)
	}
	return ports
}

func lftpList(l *Lab) (string, error) {
	return l.Outside.Run("lftp", "-e", "set net:timeout 3; set net:max-retries 1; set ftp:passive-mode on; ls; quit",
		"-u", FTPUser+","+FTPPassword, l.WAN().String())
}

func TestLabUpnpcReachesIGD(t *testing.T) {
	l := Start(t, Options{})
	out := l.Server.MustRun(t, "upnpc", "-l")
	if !strings.Contains(out, "ExternalIPAddress = "+WANAddr.String()) {
		t.Fatalf("upnpc -l does not show the WAN address:\n%s", out)
	}
}

func TestLabNatpmpcMaps21(t *testing.T) {
	l := Start(t, Options{})
	mapWithNatpmpc(t, l, 21)
	rules := l.Router.MustRun(t, "nft", "list", "chain", "inet", "nat", "prerouting_miniupnpd")
	if !strings.Contains(rules, "dport 21 dnat ip to "+ServerAddr.String()+":21") {
		t.Fatalf("no DNAT rule for 21 after natpmpc:\n%s", rules)
	}
}

func TestLabLftpThroughRouter(t *testing.T) {
	l := Start(t, Options{})
	if out, err := lftpList(l); err == nil {
		t.Fatalf("lftp listed files with nothing mapped:\n%s", out)
	}
	mapWithNatpmpc(t, l, ftpPorts()...)
	out, err := lftpList(l)
	if err != nil || !strings.Contains(out, "file1.txt") {
		t.Fatalf("lftp from outside did not list files: %v\n%s", err, out)
	}
}

func TestLabDefaultHostCapturesLogin(t *testing.T) {
	l := Start(t, Options{DefaultHost: true})
	mapWithNatpmpc(t, l, ftpPorts()...)
	out, err := l.Outside.Run("lftp", "-d", "-e", "set net:timeout 3; set net:max-retries 1; ls; quit",
		"-u", FTPUser+","+FTPPassword, l.WAN().String())
	if err == nil {
		t.Fatalf("login through the default host succeeded:\n%s", out)
	}
	if !strings.Contains(out, OtherFortune) || strings.Contains(out, ServerFortune) {
		t.Fatalf("outside login did not reach the default host:\n%s", out)
	}
	if strings.Contains(out, "file1.txt") {
		t.Fatalf("listing from the default host:\n%s", out)
	}
	l.SetDefaultHost(false)
	if out, err := lftpList(l); err != nil || !strings.Contains(out, "file1.txt") {
		t.Fatalf("after turning the default host off, lftp fails: %v\n%s", err, out)
	}
}

// TestDataTimeouts: lftp's silent retry of a dropped EPSV data connection
// is a failure; a control connection's timeout is not a data failure.
func TestDataTimeouts(t *testing.T) {
	out := `---> EPSV
<--- 229 Extended Passive mode OK (|||42005|)
---- Connecting data socket to (2001:db8:2::2) port 42005
**** Timeout - reconnecting
---- Closing data socket
---- Connecting to 2001:db8:2::2 (2001:db8:2::2) port 21
**** Timeout - reconnecting
`
	if n := dataTimeouts(out); n != 1 {
		t.Errorf("dataTimeouts = %d, want 1", n)
	}
}
