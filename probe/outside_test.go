package probe

import (
	"testing"

	"github.com/natdoctor/natdoctor/check"
)

// TestProvedReachable: only a walk that reached the same server, every
// port's nonce back and an unmapped port that did not reach this host
// prove the mappings; anything less leaves the router to be asked.
func TestProvedReachable(t *testing.T) {
	good := func() *OutsideResult {
		r := &OutsideResult{
			Outside:    &FTPResult{Reached: OK},
			SameServer: check.Yes,
			Canary:     &CanaryResult{ThisHostIsDefault: check.No},
		}
		for p := uint16(42000); p <= 42002; p++ {
			r.Passive = append(r.Passive, PortProbe{Port: p, Status: OK, Outcome: "this-host"})
		}
		return r
	}
	ports := []uint16{21, 42000, 42001, 42002}
	if !good().ProvedReachable(ports, 21) {
		t.Fatal("a clean outside check did not prove the ports")
	}
	for name, spoil := range map[string]func(*OutsideResult){
		"no outside walk":         func(r *OutsideResult) { r.Outside = nil },
		"walk failed":             func(r *OutsideResult) { r.Outside.Reached = Failed },
		"another server":          func(r *OutsideResult) { r.SameServer = check.No },
		"this host is default":    func(r *OutsideResult) { r.Canary.ThisHostIsDefault = check.Yes },
		"default host unknown":    func(r *OutsideResult) { r.Canary.ThisHostIsDefault = check.Unknown },
		"no canary":               func(r *OutsideResult) { r.Canary = nil },
		"a port refused":          func(r *OutsideResult) { r.Passive[1].Status = Failed },
		"a port in use (skipped)": func(r *OutsideResult) { r.Passive[2].Status = Skipped },
		"a port never checked":    func(r *OutsideResult) { r.Passive = r.Passive[:2] },
	} {
		r := good()
		spoil(r)
		if r.ProvedReachable(ports, 21) {
			t.Errorf("%s: called proved", name)
		}
	}
	var none *OutsideResult
	if none.ProvedReachable(ports, 21) {
		t.Error("no outside check: called proved")
	}
}
