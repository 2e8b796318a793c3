package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ANSI colours for terminals.
const (
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	green  = "\x1b[32m"
	dim    = "\x1b[2m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

func statusMark(s string) string {
	switch s {
	case "ok":
		return "✓"
	case "failed", "error":
		return "✗"
	}
	return "-"
}

func sevMark(s Severity) string {
	switch s {
	case SevError:
		return "✗"
	case SevWarning:
		return "!"
	case SevOK:
		return "✓"
	}
	return "i"
}

// WriteText writes the report for people: the verdict, the path a
// connection from outside takes, then findings by severity with fixes.
func (r *Report) WriteText(w io.Writer, color bool) error {
	c := colorizer(color)
	var b strings.Builder
	writeVerdict(&b, r.Verdict, r.Healthy, c)
	if len(r.Families) > 0 {
		b.WriteString("By address family:\n")
		for _, f := range r.Families {
			mark := familyMark(f.Status)
			col := map[string]string{"✓": green, "✗": red, "-": dim}[mark]
			fmt.Fprintf(&b, "  %s %-5s %s\n", c(col, mark), strings.Replace(f.Family, "ipv", "IPv", 1), f.Summary)
		}
		b.WriteString("\n")
	}
	b.WriteString("Path of a connection from outside:\n")
	for _, h := range r.Path {
		mark := statusMark(string(h.Status))
		col := map[string]string{"✓": green, "✗": red, "-": dim}[mark]
		fmt.Fprintf(&b, "  %s %-44s %s\n", c(col, mark), h.Name, c(dim, h.Detail))
	}
	writeFindings(&b, r.Findings, c)
	writeNotChecked(&b, r.NotChecked)
	_, err := io.WriteString(w, b.String())
	return err
}

// familyMark is a family verdict's mark: reachable ✓, not checked -,
// else ✗.
func familyMark(status string) string {
	switch status {
	case "reachable":
		return "✓"
	case "not-checked":
		return "-"
	}
	return "✗"
}

// colorizer wraps text in an ANSI colour when color is set.
func colorizer(color bool) func(code, s string) string {
	return func(code, s string) string {
		if !color {
			return s
		}
		return code + s + reset
	}
}

// writeVerdict writes the verdict line, green when healthy.
func writeVerdict(b *strings.Builder, verdict string, healthy bool, c func(code, s string) string) {
	vc := green
	if !healthy {
		vc = red
	}
	fmt.Fprintf(b, "%s\n\n", c(bold+vc, "natdoctor: "+verdict))
}

// writeNotChecked lists the checks that did not run.
func writeNotChecked(b *strings.Builder, items []string) {
	if len(items) == 0 {
		return
	}
	b.WriteString("\nNot checked:\n")
	for _, n := range items {
		fmt.Fprintf(b, "  - %s\n", n)
	}
}

func writeFindings(b *strings.Builder, fs []Finding, c func(code, s string) string) {
	sevColor := map[Severity]string{SevError: red, SevWarning: yellow, SevOK: green, SevInfo: dim}
	for _, f := range fs {
		fmt.Fprintf(b, "\n%s %s %s\n", c(sevColor[f.Severity], sevMark(f.Severity)), c(bold, f.Code+":"), f.Summary)
		if f.Explanation != "" {
			fmt.Fprintf(b, "    %s\n", wrap(f.Explanation, 92, "    "))
		}
		for _, k := range sortedKeys(f.Evidence) {
			fmt.Fprintf(b, "    %s %s\n", c(dim, k+":"), evidenceText(f.Evidence[k]))
		}
		if f.Fix != "" {
			fmt.Fprintf(b, "    %s %s\n", c(bold, "fix:"), wrap(f.Fix, 92, "         "))
		}
	}
}

// WriteFindings writes findings as WriteText does, for the commands that
// judge less than diagnose (discover).
func WriteFindings(w io.Writer, fs []Finding) error {
	var b strings.Builder
	writeFindings(&b, fs, func(_, s string) string { return s })
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes the report for a forum post or an issue: headings,
// tables and code blocks, no terminal escapes.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## natdoctor diagnose\n\n**Verdict:** %s\n\n", mdEscape(r.Verdict))
	if len(r.Families) > 0 {
		b.WriteString("### By address family\n\n| | family | verdict |\n|---|---|---|\n")
		for _, f := range r.Families {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", familyMark(f.Status), f.Family, mdCell(f.Summary))
		}
		b.WriteString("\n")
	}
	b.WriteString("### Path of a connection from outside\n\n| | hop | detail |\n|---|---|---|\n")
	for _, h := range r.Path {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", statusMark(string(h.Status)), mdCell(h.Name), mdCell(h.Detail))
	}
	if len(r.Findings) > 0 {
		b.WriteString("\n### Findings\n")
	}
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "\n#### %s `%s` (%s)\n\n%s\n", sevMark(f.Severity), f.Code, f.Severity, mdEscape(f.Summary))
		if f.Explanation != "" {
			fmt.Fprintf(&b, "\n%s\n", mdEscape(f.Explanation))
		}
		if len(f.Evidence) > 0 {
			b.WriteString("\n```\n")
			for _, k := range sortedKeys(f.Evidence) {
				fmt.Fprintf(&b, "%s: %s\n", k, strings.ReplaceAll(evidenceText(f.Evidence[k]), "```", "'''"))
			}
			b.WriteString("```\n")
		}
		if f.Fix != "" {
			fmt.Fprintf(&b, "\n**Fix:** %s\n", mdEscape(f.Fix))
		}
	}
	if len(r.NotChecked) > 0 {
		b.WriteString("\n### Not checked\n\n")
		for _, n := range r.NotChecked {
			fmt.Fprintf(&b, "- %s\n", mdEscape(n))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// evidenceText renders one evidence value on one line.
func evidenceText(v any) string {
	switch t := v.(type) {
	case string:
		return sanitize(t)
	case []string:
		return sanitize(strings.Join(t, " | "))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return sanitize(string(b))
}

// sanitize drops control characters a server may have sent, so that no
// terminal escape reaches the output.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func mdEscape(s string) string {
	return strings.NewReplacer("*", "\\*", "_", "\\_", "<", "&lt;", ">", "&gt;").Replace(sanitize(s))
}

func mdCell(s string) string { return strings.ReplaceAll(mdEscape(s), "|", "\\|") }

// wrap folds s at width, indenting continuation lines.
func wrap(s string, width int, indent string) string {
	words := strings.Fields(sanitize(s))
	var b strings.Builder
	col := 0
	for i, w := range words {
		if i > 0 && col+1+len(w) > width {
			b.WriteString("\n" + indent)
			col = 0
		} else if i > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}
