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
	c := colorizer(color)
	var b strings.Builder
	writeVerdict(&b, r.Verdict, r.Healthy, c)
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
	writeNotChecked(&b, r.NotChecked)
	_, err := io.WriteString(w, b.String())
	return err
}
