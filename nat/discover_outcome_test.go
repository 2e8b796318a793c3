package nat

import (
	"testing"

	"github.com/natdoctor/natdoctor/check"
)

func TestStatusOutcome(t *testing.T) {
	for s, want := range map[Status]check.Outcome{StatusOK: check.OK, StatusNoAnswer: check.Failed, StatusUnsupported: check.Failed,
		StatusError: check.Error, StatusSkipped: check.Skipped, "": check.Skipped} {
		if got := s.Outcome(); got != want {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}
