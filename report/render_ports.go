package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes check's report as indented JSON.
func (r *PortsReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes check's report for people: the verdict, one line per
// port, then the findings with their fixes.
func (r *PortsReport) WriteText(w io.Writer, color bool) error {
	c := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + reset
	}
	var b strings.Builder
	vc := green
	if !r.Healthy {
		vc = red
	}
	fmt.Fprintf(&b, "%s\n\n", c(bold+vc, "natdoctor: "+r.Verdict))
	marks := map[string]string{PortReachable: "✓", PortUnreachable: "✗", PortUnverified: "-"}
	cols := map[string]string{PortReachable: green, PortUnreachable: red, PortUnverified: yellow}
	for _, p := range r.Ports {
		name := p.Port
		if p.Service != "" {
			name += " (" + p.Service + ")"
		}
		fmt.Fprintf(&b, "  %s %-24s %-12s %s\n", c(cols[p.Status], marks[p.Status]), name, p.Status, c(dim, p.Summary))
	}
	writeFindings(&b, r.Findings, c)
	if len(r.NotChecked) > 0 {
		b.WriteString("\nNot checked:\n")
		for _, n := range r.NotChecked {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
