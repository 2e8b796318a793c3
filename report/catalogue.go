package report

import (
	"fmt"
	"slices"
	"strings"
)

// Entry is one finding code of the catalogue, at one severity: the row of
// README's "Finding codes" table. A code with two severities (an error, or
// a warning when the session went on) has two entries.
type Entry struct {
	Code     string
	Severity Severity
	Example  string // an example summary, as README shows it
	Fix      string // the fix in short
	// After are the codes that cause this one when found with it: it is
	// listed after them, and its fix says to fix them first.
	After []string
}

// Catalogue lists every finding diagnose can report: causes before their
// symptoms (After), else in the order the rules files add them. README's
// table is made from it (TestREADMECodeTable keeps the two equal) and
// diagnose --help names its codes; a finding outside it is a bug
// (Catalogued). A rules file adds the codes it decides with catalogue.
var Catalogue []Entry

// catalogue adds entries to the Catalogue, in their place.
func catalogue(entries []Entry) bool {
	Catalogue = append(Catalogue, entries...)
	depth := depths(afterOf)
	slices.SortStableFunc(Catalogue, func(a, b Entry) int { return depth(a.Code) - depth(b.Code) })
	return true
}

// depths returns a code's depth in the graph of causes that follows
// gives: 0 for a code caused by none, else one more than its deepest
// cause. A cycle stops at the catalogue's length (TestCatalogueAfter
// reports it).
func depths(follows func(code string) []string) func(code string) int {
	known := map[string]int{}
	var visit func(code string, seen int) int
	visit = func(code string, seen int) int {
		if d, ok := known[code]; ok || seen > len(Catalogue) {
			return d
		}
		d := 0
		for _, a := range follows(code) {
			if a != code {
				d = max(d, 1+visit(a, seen+1))
			}
		}
		known[code] = d
		return d
	}
	return func(code string) int { return visit(code, 0) }
}

// entry returns f's catalogue entry.
func entry(f Finding) (Entry, bool) {
	i := slices.IndexFunc(Catalogue, func(e Entry) bool { return e.Code == f.Code && e.Severity == f.Severity })
	if i < 0 {
		return Entry{}, false
	}
	return Catalogue[i], true
}

// Catalogued reports whether f's code and severity are in the catalogue.
func Catalogued(f Finding) bool {
	return slices.ContainsFunc(Catalogue, func(e Entry) bool { return e.Code == f.Code && e.Severity == f.Severity })
}

// Codes returns the catalogue's codes, each once, in its order.
func Codes() []string {
	var codes []string
	for _, e := range Catalogue {
		if !slices.Contains(codes, e.Code) {
			codes = append(codes, e.Code)
		}
	}
	return codes
}

// CodeTable renders the catalogue as README's Markdown table.
func CodeTable() string {
	var b strings.Builder
	b.WriteString("| code | severity | example summary | fix in short |\n|---|---|---|---|\n")
	for _, e := range Catalogue {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", e.Code, e.Severity, e.Example, e.Fix)
	}
	return b.String()
}
