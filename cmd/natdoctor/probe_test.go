package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/internal/iostreams"
	"github.com/natdoctor/natdoctor/probe/ftptest"
	"github.com/natdoctor/natdoctor/report"
)

func TestPasswordSources(t *testing.T) {
	ios, _, _, errOut := iostreams.Test()
	t.Setenv("ND_TEST_PW", "from-env")
	c := credFlags{user: "u", passwordEnv: "ND_TEST_PW"}
	if pw, err := c.password(ios); err != nil || pw != "from-env" {
		t.Errorf("env: %q %v", pw, err)
	}
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("from-file\nsecond line\n"), 0o600)
	c = credFlags{user: "u", passwordFile: file}
	if pw, err := c.password(ios); err != nil || pw != "from-file" {
		t.Errorf("file: %q %v", pw, err)
	}
	c = credFlags{user: "u"}
	if _, err := c.password(ios); err == nil || exitCode(t.Context(), err) != exitUsage {
		t.Errorf("no terminal, no source: %v", err)
	}
	ios.SetTTY(true, false, false)
	ios.ReadPassword = func() ([]byte, error) { return []byte("typed"), nil }
	if pw, err := c.password(ios); err != nil || pw != "typed" || !strings.Contains(errOut.String(), "FTP password for u") {
		t.Errorf("prompt: %q %v %q", pw, err, errOut.String())
	}
	c = credFlags{user: "u", passwordEnv: "ND_TEST_UNSET_VAR"}
	if _, err := c.password(ios); err == nil {
		t.Error("unset variable accepted")
	}
}

func TestNoPasswordFlagOnArgv(t *testing.T) {
	code, _, errOut := runCmd(t, "probe", "ftp", "127.0.0.1", "--password", "x")
	if code != exitUsage || !strings.Contains(errOut, "unknown flag: --password") {
		t.Errorf("--password accepted: %d %s", code, errOut)
	}
}

// TestProbeFTPJudgesWithDiagnoseRules: probe ftp's findings and exit
// status come from the rules diagnose uses, in text and JSON.
func TestProbeFTPJudgesWithDiagnoseRules(t *testing.T) {
	t.Setenv("ND_TEST_PW", "pw")
	cases := []struct {
		name   string
		srv    *ftptest.Server
		code   int
		want   string // a finding code; "" for none of severity error
		inText string
	}{
		{"healthy", &ftptest.Server{Password: "pw"}, exitOK, "", "ftp-cleartext"},
		{"LIST refused", &ftptest.Server{Password: "pw", ListReply: "550 Can't open directory"}, exitProblem, report.CodeFTPListFailed, "LIST answered 550"},
		{"home unreadable (Pure-FTPd's 226)", &ftptest.Server{Password: "pw", ListReply: "226 Sorry, we were unable to read [.]"}, exitProblem,
			report.CodeFTPListFailed, "could not read the directory"},
		{"passive mode off", &ftptest.Server{Password: "pw", PassiveReply: "550 Permission denied."}, exitProblem, report.CodeFTPListFailed, "refuses passive mode"},
		{"wrong password", &ftptest.Server{Password: "other"}, exitProblem, report.CodeFTPLoginFailed, "wrong user name or password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := c.srv.Start(t)
			code, out, errOut := runCmd(t, "probe", "ftp", addr, "--user", "u", "--password-env", "ND_TEST_PW", "--tls", "off")
			if code != c.code || !strings.Contains(out, c.inText) {
				t.Errorf("text: exit %d (want %d), %q not in\n%s%s", code, c.code, c.inText, out, errOut)
			}
			code, out, _ = runCmd(t, "probe", "ftp", addr, "--user", "u", "--password-env", "ND_TEST_PW", "--tls", "off", "--json")
			var got struct {
				Reached  string           `json:"reached"`
				Findings []report.Finding `json:"findings"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil || got.Reached != "ok" || got.Findings == nil {
				t.Fatalf("JSON: %v reached=%q findings=%v\n%s", err, got.Reached, got.Findings, out)
			}
			var errs []string
			for _, f := range got.Findings {
				if f.Severity == report.SevError {
					errs = append(errs, f.Code)
				}
			}
			if code != c.code || (c.want == "") != (len(errs) == 0) || c.want != "" && errs[0] != c.want {
				t.Errorf("JSON: exit %d, errors %v; want %d, %q", code, errs, c.code, c.want)
			}
		})
	}
}
