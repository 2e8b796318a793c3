package main

import (
	"strings"
	"sync"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
)

// A range that fails halfway leaves the router exactly as it was, compared
// with miniupnpc's own listing, and keeps a mapping that was there before.
func TestLabFailedRangeLeavesRouterAsFound(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{DenyPorts: []int{42007}})
	bin := lab.Natdoctor(t)
	l.Server.MustRun(t, bin, "add", "21", "--desc", "made before")
	l.Other.MustRun(t, "upnpc", "-a", lab.DefaultHostLAN.String(), "8080", "8080", "TCP")
	before := upnpcList(t, l)
	out, errOut, code := l.Server.Natdoctor(t, "add", "21", "42000-42010")
	if code != exitProblem || !strings.Contains(errOut, "42007") || !strings.Contains(errOut, "as it was") {
		t.Fatalf("add over a refused port: exit %d\n%s%s", code, out, errOut)
	}
	after := upnpcList(t, l)
	if strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("router changed:\nbefore %v\nafter  %v", before, after)
	}
}

// Two natdoctor runs on the same ports at once corrupt neither.
func TestLabConcurrentAdds(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	bin := lab.Natdoctor(t)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	outs := make([]string, 2)
	for i := range codes {
		wg.Go(func() {
			var o, e string
			o, e, codes[i] = l.Server.Natdoctor(t, "add", "21", labRange)
			outs[i] = o + e
		})
	}
	wg.Wait()
	if codes[0] != 0 && codes[1] != 0 {
		t.Fatalf("both concurrent adds failed: %v\n%s\n%s", codes, outs[0], outs[1])
	}
	want := ftpMappings(lab.ServerAddr.String())
	if got := upnpcList(t, l); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("after two concurrent adds: %v", got)
	}
	l.Server.MustRun(t, bin, "remove", "21", labRange)
	if got := upnpcList(t, l); len(got) != 0 {
		t.Errorf("left after remove: %v", got)
	}
}

// No output of any command that takes credentials carries the password:
// text, -v traces, JSON and Markdown, stdout and stderr.
func TestLabPasswordNeverPrinted(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	refl := l.StartReflector(t)
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "21", labRange)
	for _, pw := range []string{lab.FTPPassword, "Wr0ng-" + lab.FTPPassword} {
		env := []string{"LAB_FTP_PW=" + pw}
		cred := []string{"--user", lab.FTPUser, "--password-env", "LAB_FTP_PW"}
		for _, args := range [][]string{
			{"diagnose", "-v", "--pasv", labRange, "--reflector", refl},
			{"diagnose", "--json", "--pasv", labRange, "--reflector", refl},
			{"diagnose", "--format", "markdown", "--pasv", labRange},
			{"probe", "ftp", lab.ServerAddr.String(), "-v"},
			{"probe", "ftp", lab.ServerAddr.String(), "--json", "--samples", "2"},
		} {
			out, errOut, _ := l.Server.NatdoctorEnv(t, env, append(args, cred...)...)
			if out == "" {
				t.Errorf("%v: no output", args)
			}
			if strings.Contains(out+errOut, pw) {
				t.Errorf("%v: the password appears in the output", args)
			}
		}
	}
}
