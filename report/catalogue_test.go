package report

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// TestCatalogueAfter: every code a finding follows from is catalogued, no
// code follows from itself, and the catalogue lists causes first.
func TestCatalogueAfter(t *testing.T) {
	index := map[string]int{}
	for i, e := range Catalogue {
		if _, ok := index[e.Code]; !ok {
			index[e.Code] = i
		}
	}
	for i, e := range Catalogue {
		for _, a := range e.After {
			j, ok := index[a]
			switch {
			case !ok:
				t.Errorf("%s follows from %s, which is not catalogued", e.Code, a)
			case a == e.Code:
				t.Errorf("%s follows from itself", e.Code)
			case j > i:
				t.Errorf("%s (row %d) is listed before its cause %s (row %d)", e.Code, i, a, j)
			}
		}
	}
}

// TestCausesComeFirst: a symptom is listed after its cause, says so, and
// its fix starts with the cause's; without the cause it stands alone.
func TestCausesComeFirst(t *testing.T) {
	fs := []Finding{
		{Code: CodePASVUnreachable, Severity: SevError, Fix: "Map them."},
		{Code: CodeFTPCleartext, Severity: SevWarning, Fix: "Enable TLS."},
		{Code: CodeDefaultHost, Severity: SevError, Fix: "Turn the default host off."},
	}
	order(fs)
	if got := []string{fs[0].Code, fs[1].Code, fs[2].Code}; !slices.Equal(got, []string{CodeDefaultHost, CodePASVUnreachable, CodeFTPCleartext}) {
		t.Fatalf("order %v", got)
	}
	if p := fs[1]; !slices.Equal(p.CausedBy, []string{CodeDefaultHost}) || p.Fix != "First fix default-host-override (above). Then, if this is still so: map them." {
		t.Errorf("symptom: caused by %v, fix %q", p.CausedBy, p.Fix)
	}
	if len(fs[0].CausedBy) != 0 || len(fs[2].CausedBy) != 0 || fs[0].Fix != "Turn the default host off." {
		t.Errorf("causes changed: %+v", fs)
	}

	alone := []Finding{{Code: CodePASVUnreachable, Severity: SevError, Fix: "Map them."}}
	order(alone)
	if len(alone[0].CausedBy) != 0 || alone[0].Fix != "Map them." {
		t.Errorf("a symptom without its cause: %+v", alone[0])
	}
}

// TestLANUnreachableFirst: a server that does not answer on the LAN comes
// before the mapping findings, which depend on it answering at all.
func TestLANUnreachableFirst(t *testing.T) {
	o := airport()
	o.Inside = &probe.FTPResult{Target: "10.0.1.2:21", Reached: probe.Failed, ReachErr: "connection refused"}
	o.Outside.Outside.Reached, o.Outside.Outside.ReachErr = probe.Failed, "timed out"
	r := Build(o)
	first := r.Findings[0]
	if first.Code != CodeFTPUnreachable || !strings.Contains(first.Summary, "on the LAN") || len(first.CausedBy) != 0 {
		t.Fatalf("first finding %s %q caused by %v", first.Code, first.Summary, first.CausedBy)
	}
	if !strings.Contains(r.Verdict, "does not answer on the LAN") {
		t.Errorf("verdict %q", r.Verdict)
	}
}

// TestListFailedIsNotADeadPort: a LIST refused over a data connection that
// opened is ftp-list-failed, not a passive port firewall; a connection
// that did not open is the dead port.
func TestListFailedIsNotADeadPort(t *testing.T) {
	walk := func(d probe.DataCheck) *Observations {
		o := airport()
		o.Outside = nil
		o.Inside.List, o.Inside.Data = probe.Failed, []probe.DataCheck{d}
		return o
	}
	codes := func(r *Report) []string {
		var cs []string
		for _, f := range r.Findings {
			cs = append(cs, f.Code)
		}
		return cs
	}
	refused := Build(walk(probe.DataCheck{Addr: netip.MustParseAddrPort("10.0.1.2:42003"), Via: "control", Status: probe.Failed,
		Connected: true, Error: "LIST answered 550"}))
	if c := codes(refused); !slices.Contains(c, CodeFTPListFailed) || slices.Contains(c, CodePASVUnreachable) {
		t.Errorf("LIST refused: %v", c)
	}
	dead := Build(walk(probe.DataCheck{Addr: netip.MustParseAddrPort("10.0.1.2:42003"), Via: "control", Status: probe.Failed,
		Error: "connection refused"}))
	if c := codes(dead); slices.Contains(c, CodeFTPListFailed) || !slices.Contains(c, CodePASVUnreachable) {
		t.Errorf("dead port: %v", c)
	}
}

// TestLookupFailureIsTyped: the path says why the lookup failed from the
// error's type, not its text.
func TestLookupFailureIsTyped(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&nat.UPnPError{Code: 606, Action: "GetSpecificPortMappingEntry"}, "refused the lookup (UPnP error 606 ActionNotAuthorized)"},
		{fmt.Errorf("UPnP GetSpecificPortMappingEntry: %w: i/o timeout", nat.ErrNoResponse), "did not answer the lookup in time"},
		{fmt.Errorf("UPnP GetSpecificPortMappingEntry: %w: Post http://10.0.1.1:5000/ctl/IPConn: dial tcp 10.0.1.1:5000: connect: connection refused", nat.ErrServiceGone),
			"nothing answers at the router's UPnP address"},
	} {
		o := airport()
		o.Discovery.UPnP.Device = &nat.DeviceInfo{ModelName: "test"}
		o.MappingsFailed(c.err)
		r := Build(o)
		if !strings.Contains(r.Path[1].Detail, c.want) || o.MappingsErr != c.err.Error() {
			t.Errorf("%v: hop %q, want %q", c.err, r.Path[1].Detail, c.want)
		}
	}
}
