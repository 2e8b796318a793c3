// Package check is natdoctor's one vocabulary for "checked or not": the
// Outcome of a check (it ran and passed, it ran and failed, it did not
// run, it could not run) and a Fact a check established (yes, no, or
// unknown because no check could tell). The two are apart so that "ok"
// never stands for something bad: "this host is the default host" is
// Yes, not OK.
package check

import (
	"encoding/json"
	"fmt"
)

// Outcome is how one check went. It keeps "not checked" apart from "no".
type Outcome string

// Check outcomes.
const (
	OK      Outcome = "ok"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped" // not checked: the evidence says why
	Error   Outcome = "error"   // the check itself could not run
)

// Ran reports whether the check ran to an answer (ok or failed).
func (o Outcome) Ran() bool { return o == OK || o == Failed }

// Fact is something a check found out: yes, no, or unknown (the zero
// value: no check could tell).
type Fact int8

// Facts.
const (
	Unknown Fact = iota
	Yes
	No
)

// FactOf turns a known answer into a Fact.
func FactOf(b bool) Fact {
	if b {
		return Yes
	}
	return No
}

// Known reports whether a check could tell.
func (f Fact) Known() bool { return f != Unknown }

// String returns "yes", "no" or "unknown".
func (f Fact) String() string {
	switch f {
	case Yes:
		return "yes"
	case No:
		return "no"
	}
	return "unknown"
}

// v1 writes facts in natdoctor.diagnose/v1's words, which used Outcome's
// for them: "ok" for yes, "failed" for no, "skipped" for unknown.
var v1 = map[Fact]string{Yes: string(OK), No: string(Failed), Unknown: string(Skipped)}

// MarshalJSON writes the fact as natdoctor.diagnose/v1 has it ("ok",
// "failed", "skipped"), so that v1 documents keep their meaning.
func (f Fact) MarshalJSON() ([]byte, error) { return json.Marshal(v1[f]) }

// UnmarshalJSON reads v1's words and "yes", "no", "unknown".
func (f *Fact) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	switch s {
	case "ok", "yes":
		*f = Yes
	case "failed", "no":
		*f = No
	case "skipped", "unknown", "":
		*f = Unknown
	default:
		return fmt.Errorf("check: %q is not a fact (want yes, no or unknown)", s)
	}
	return nil
}
