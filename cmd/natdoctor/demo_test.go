package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
)

// TestDemo is `make demo`: the user's AirPort situation in the lab, and
// natdoctor finding it. It runs only with NATDOCTOR_DEMO=1.
func TestDemo(t *testing.T) {
	if os.Getenv("NATDOCTOR_DEMO") != "1" {
		t.Skip("set NATDOCTOR_DEMO=1 (make demo)")
	}
	// An AirPort speaks NAT-PMP, not UPnP; its Default Host is on.
	l := lab.Start(t, lab.Options{DefaultHost: true, NoUPnP: true})
	refl := l.StartReflector(t)
	bin := lab.Natdoctor(t)
	// The range split into two rules, as the router's admin tool forced.
	l.Server.MustRun(t, bin, "add", "21", "42000-42005", "--via", "natpmp")
	l.Server.MustRun(t, bin, "add", "42006-42010", "--via", "natpmp")
	run := func(title string) {
		fmt.Printf("\n===== %s =====\n$ natdoctor diagnose --pasv 42000-42010 --user %s --password-env FTP_PW --reflector %s\n\n", title, lab.FTPUser, refl)
		out, errOut, code := l.Server.NatdoctorEnv(t, []string{"FTP_PW=" + lab.FTPPassword}, "diagnose", "--pasv", "42000-42010",
			"--user", lab.FTPUser, "--password-env", "FTP_PW", "--reflector", refl)
		fmt.Print(out, errOut)
		fmt.Printf("(exit status %d)\n", code)
	}
	run("the AirPort: Default Host on, NAT-PMP mappings present")
	l.SetDefaultHost(false)
	run("after turning Default Host off")
}
