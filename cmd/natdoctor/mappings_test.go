package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/internal/iostreams"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/nat/nattest"
)

// runFake runs natdoctor against a fake router on loopback.
func runFake(t *testing.T, r *nattest.Router, args ...string) (int, string, string) {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	args = append([]string{"--gateway", r.Addr.String()}, args...)
	code := run(context.Background(), args, ios, func(g *globalOptions) {
		g.configure = func(c *nat.Config) {
			c.SSDPMulticast = false
			c.PCPKey = []byte("test key")
			// Bounds, not waits: the fake answers in milliseconds, but a
			// loaded machine (CI, a lab next door) can take seconds.
			c.PMPTimeout, c.UPnPTimeout = 3*time.Second, 5*time.Second
		}
	})
	return code, out.String(), errOut.String()
}

func TestBadSpecsExit2WithoutRequests(t *testing.T) {
	r := nattest.New(t)
	for _, args := range [][]string{
		{"add", "0"}, {"add", "70000"}, {"add", "42010-42000"}, {"add", "1-9000"}, {"add", "x"},
		{"remove", "21,,22"}, {"keep", "99999"}, {"add", "21", "--via", "carrier-pigeon"}, {"add", "21", "--to", "host"},
		{"add"}, {"add", "21", "--lease", "-1s"},
	} {
		code, out, errOut := runFake(t, r, args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "natdoctor: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	if n := r.PMPRequests.Load() + r.PCPRequests.Load() + r.SSDPRequests.Load() + r.SOAPRequests.Load(); n != 0 {
		t.Errorf("bad specs sent %d requests to the router", n)
	}
	_, _, errOut := runFake(t, r, "add", "42010-42000")
	if !strings.Contains(errOut, `"42010-42000"`) || !strings.Contains(errOut, "reversed") {
		t.Errorf("message does not name the bad part: %s", errOut)
	}
}

func TestAddListRemoveJSON(t *testing.T) {
	r := nattest.New(t)
	code, out, errOut := runFake(t, r, "add", "21", "42000-42010", "--to", "10.0.1.2", "--json")
	if code != 0 {
		t.Fatalf("add: exit %d\n%s%s", code, out, errOut)
	}
	var res stepsJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Steps) != 12 || res.Via != nat.MethodUPnP {
		t.Fatalf("add --json: %v %+v", err, res)
	}
	if res.Steps[0].LeaseSeconds == nil || *res.Steps[0].LeaseSeconds != 3600 {
		t.Errorf("granted lease not reported: %+v", res.Steps[0])
	}
	code, out, _ = runFake(t, r, "list", "--json")
	var list struct {
		Mappings []map[string]any `json:"mappings"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 || len(list.Mappings) != 12 {
		t.Fatalf("list: %d %v %s", code, err, out)
	}
	for _, key := range []string{"protocol", "external_port", "internal_client", "internal_port", "description", "lease_seconds", "enabled", "remote_host"} {
		if _, ok := list.Mappings[0][key]; !ok {
			t.Errorf("list JSON lacks %q: %v", key, list.Mappings[0])
		}
	}
	code, out, _ = runFake(t, r, "add", "21", "42000-42010", "--to", "10.0.1.2", "--dry-run")
	if code != 0 || strings.Count(out, "would renew") != 12 {
		t.Errorf("dry run of a mapped range:\n%s", out)
	}
	r.Set("TCP", 8080, nattest.Entry{InternalClient: "10.0.1.253", InternalPort: 8080})
	code, out, errOut = runFake(t, r, "remove", "21,42000-42010,8080", "--to", "10.0.1.2")
	if code != 0 || len(r.Entries()) != 1 || !strings.Contains(errOut, "left alone") {
		t.Errorf("remove: exit %d, left %v\n%s%s", code, r.Entries(), out, errOut)
	}
}

func TestAddConflictExit1NamesHost(t *testing.T) {
	r := nattest.New(t)
	r.Set("TCP", 42003, nattest.Entry{InternalClient: "10.0.1.253", InternalPort: 42003, Description: "old"})
	code, _, errOut := runFake(t, r, "add", "21", "42000-42010", "--to", "10.0.1.2")
	if code != exitProblem || !strings.Contains(errOut, "10.0.1.253") || len(r.Entries()) != 1 {
		t.Errorf("exit %d, entries %v\n%s", code, r.Entries(), errOut)
	}
}

func TestListWithoutUPnPSaysSo(t *testing.T) {
	r := nattest.New(t)
	r.SSDPSilent.Store(true)
	code, out, errOut := runFake(t, r, "list")
	if code != exitProblem || out != "" || !strings.Contains(errOut, "cannot list") {
		t.Errorf("exit %d, out %q, err %q", code, out, errOut)
	}
}

// TestAddRouterIgnoringLease: a router that accepts a one-hour lease but
// holds the mapping permanently. add reports what the router holds (it
// outlives natdoctor), and the lease it asked for, in text and JSON.
func TestAddRouterIgnoringLease(t *testing.T) {
	r := nattest.New(t)
	r.IgnoreLease.Store(true)
	code, out, errOut := runFake(t, r, "add", "21", "--to", "10.0.1.2")
	if code != 0 || !strings.Contains(out, "lease permanent (asked 1h0m0s)") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runFake(t, r, "add", "2121", "--to", "10.0.1.2", "--json")
	var res stepsJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || len(res.Steps) != 1 ||
		res.Steps[0].LeaseSeconds == nil || *res.Steps[0].LeaseSeconds != 0 {
		t.Errorf("json: exit %d, %v\n%s", code, err, out)
	}
}

// TestListIncompleteShowsWhatItReadAndFails: a router that ends its table
// with an answer that is no SOAP reply. list shows the entries it read,
// says the listing stopped early, and exits 1, in text and in JSON.
func TestListIncompleteShowsWhatItReadAndFails(t *testing.T) {
	r := nattest.New(t, func(r *nattest.Router) {
		r.IGDv1 = true // no bulk listing: entry by entry
		r.EndOfTableBody = "<html><body>Error</body></html>"
	})
	r.Set("TCP", 21, nattest.Entry{InternalClient: "10.0.1.2", InternalPort: 21, Enabled: true, Description: "ftp"})
	code, out, errOut := runFake(t, r, "list")
	if code != exitProblem || !strings.Contains(out, "10.0.1.2:21") || !strings.Contains(errOut, "stopped early after 1 entries") ||
		!strings.Contains(errOut, "may hold more mappings") {
		t.Errorf("text: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, _ = runFake(t, r, "list", "--json")
	var list struct {
		Mappings   []map[string]any `json:"mappings"`
		Incomplete string           `json:"incomplete"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != exitProblem || len(list.Mappings) != 1 || list.Incomplete == "" {
		t.Errorf("json: exit %d, %v\n%s", code, err, out)
	}
}

// TestDiscoverJudgesWithDiagnoseRules: discover's double NAT is diagnose's
// double-nat finding (same rule, same text), in the text and in the JSON.
func TestDiscoverJudgesWithDiagnoseRules(t *testing.T) {
	r := nattest.New(t)
	r.ExternalAddrIs.Store("11.0.0.1") // public, as in the lab (the fake's default is a documentation address)
	code, out, errOut := runFake(t, r, "discover", "--json")
	var res struct {
		DoubleNAT bool             `json:"double_nat"`
		Findings  []map[string]any `json:"findings"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || res.DoubleNAT || len(res.Findings) != 0 {
		t.Fatalf("healthy router: exit %d %+v\n%s%s", code, res, out, errOut)
	}
	r.ExternalAddrIs.Store("100.64.0.1") // carrier-grade NAT upstream
	code, out, _ = runFake(t, r, "discover", "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitProblem || !res.DoubleNAT ||
		len(res.Findings) != 1 || res.Findings[0]["code"] != "double-nat" {
		t.Fatalf("shared external address: exit %d %v %+v", code, err, res)
	}
	code, out, _ = runFake(t, r, "discover")
	if code != exitProblem || !strings.Contains(out, "double-nat: double NAT: the router's external address 100.64.0.1 is shared") || !strings.Contains(out, "fix:") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
}

// TestDiscoverNamesWorkarounds: discover names the UPnP stack a replayed
// device reports and what natdoctor worked around (the Huawei capture's
// IGD in the Broadband Forum's namespace), in text and JSON.
func TestDiscoverNamesWorkarounds(t *testing.T) {
	c, err := nattest.LoadCapture(filepath.Join("..", "..", "nat", "nattest", "testdata", "replay", "huawei-10911"))
	if err != nil {
		t.Fatal(err)
	}
	r := nattest.New(t, func(r *nattest.Router) { r.Replay, r.IGDv1 = c, true })
	r.Silent.Store(true)
	r.ExternalAddrIs.Store("11.0.0.1")
	code, out, errOut := runFake(t, r, "discover")
	if code != exitOK || !strings.Contains(out, "worked around: the device describes its IGD in the Broadband Forum's namespace") {
		t.Errorf("text: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runFake(t, r, "discover", "--json")
	var res struct {
		UPnP struct {
			Device struct {
				ServiceType string   `json:"service_type"`
				Workarounds []string `json:"workarounds"`
			} `json:"device"`
		} `json:"upnp"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || len(res.UPnP.Device.Workarounds) != 1 ||
		res.UPnP.Device.ServiceType != "urn:dslforum-org:service:WANPPPConnection:1" {
		t.Errorf("JSON: exit %d %v %+v\n%s", code, err, res, out)
	}
}
