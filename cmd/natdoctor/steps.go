package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/natdoctor/natdoctor/nat"
)

// stepJSON is one step of an add or remove in JSON output.
type stepJSON struct {
	Action         nat.Action   `json:"action"`
	Protocol       nat.Protocol `json:"protocol"`
	ExternalPort   uint16       `json:"external_port"`
	InternalClient string       `json:"internal_client"`
	InternalPort   uint16       `json:"internal_port"`
	LeaseSeconds   *int64       `json:"lease_seconds,omitempty"`
	Existing       *mappingJSON `json:"existing,omitempty"`
	Error          string       `json:"error,omitempty"`
}

type stepsJSON struct {
	Via    nat.Method `json:"via"`
	DryRun bool       `json:"dry_run"`
	Steps  []stepJSON `json:"steps"`
	Error  string     `json:"error,omitempty"`
}

func toStepsJSON(via nat.Method, dry bool, steps []nat.Step, self netip.Addr, err error) stepsJSON {
	out := stepsJSON{Via: via, DryRun: dry, Steps: []stepJSON{}}
	for _, s := range steps {
		sj := stepJSON{Action: s.Action, Protocol: s.Request.Protocol, ExternalPort: s.Request.ExternalPort,
			InternalClient: s.Request.InternalAddr.String(), InternalPort: s.Request.InternalPort}
		if s.Granted != nil {
			l := int64(s.Granted.Lease / time.Second)
			sj.LeaseSeconds = &l
		}
		if s.Existing != nil {
			e := toMappingJSON(*s.Existing, self)
			sj.Existing = &e
		}
		if s.Err != nil {
			sj.Error = s.Err.Error()
		}
		out.Steps = append(out.Steps, sj)
	}
	if err != nil {
		out.Error = err.Error()
	}
	return out
}

func printSteps(w io.Writer, via nat.Method, dry bool, steps []nat.Step) {
	verb := map[nat.Action][2]string{
		nat.ActionAdd:      {"would add", "added"},
		nat.ActionRenew:    {"would renew", "renewed"},
		nat.ActionReplace:  {"would replace", "replaced"},
		nat.ActionConflict: {"conflict", "conflict"},
		nat.ActionRemove:   {"would remove", "removed"},
		nat.ActionAbsent:   {"not mapped", "not mapped"},
		nat.ActionSkip:     {"left alone", "left alone"},
	}
	for _, s := range steps {
		v := verb[s.Action][1]
		if dry {
			v = verb[s.Action][0]
		}
		if !dry && s.Err != nil {
			v = "failed"
		} else if !dry && s.Granted == nil && (s.Action == nat.ActionAdd || s.Action == nat.ActionRenew || s.Action == nat.ActionReplace) {
			v = "not done"
		}
		line := fmt.Sprintf("%-12s %s %d -> %s:%d", v, s.Request.Protocol, s.Request.ExternalPort, s.Request.InternalAddr, s.Request.InternalPort)
		if s.Granted != nil && s.Err == nil {
			line += fmt.Sprintf("  lease %s", leaseText(s.Granted.Lease))
			if s.Granted.Lease != s.Request.Lease && s.Request.Lease != 0 {
				line += fmt.Sprintf(" (asked %s)", leaseText(s.Request.Lease))
			}
		}
		if s.Existing != nil && (s.Action == nat.ActionConflict || s.Action == nat.ActionReplace || s.Action == nat.ActionSkip) {
			line += fmt.Sprintf("  (mapped to %s:%d, %q)", s.Existing.InternalAddr, s.Existing.InternalPort, s.Existing.Description)
		}
		if s.Err != nil && !errors.Is(s.Err, context.Canceled) {
			line += "  " + s.Err.Error()
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "via %s\n", via)
}

// writeSteps reports an add or remove on stdout (JSON or text) and returns
// the operation's error.
func writeSteps(g *globalOptions, via nat.Method, dry bool, steps []nat.Step, self netip.Addr, opErr error) error {
	g.tracef("%d UPnP requests to the router", g.requests.Load())
	if g.JSON {
		if err := writeJSON(g.IO.Out, toStepsJSON(via, dry, steps, self, opErr)); err != nil {
			return err
		}
	} else {
		printSteps(g.IO.Out, via, dry, steps)
	}
	return opErr
}
