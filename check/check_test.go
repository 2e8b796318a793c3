package check

import (
	"encoding/json"
	"testing"
)

func TestFactJSON(t *testing.T) {
	for f, want := range map[Fact]string{Yes: `"ok"`, No: `"failed"`, Unknown: `"skipped"`} {
		b, err := json.Marshal(f)
		if err != nil || string(b) != want {
			t.Errorf("%v: %s %v, want %s", f, b, err, want)
		}
		var back Fact
		if err := json.Unmarshal(b, &back); err != nil || back != f {
			t.Errorf("%s read back as %v (%v)", b, back, err)
		}
	}
	for in, want := range map[string]Fact{`"yes"`: Yes, `"no"`: No, `"unknown"`: Unknown} {
		var f Fact
		if err := json.Unmarshal([]byte(in), &f); err != nil || f != want {
			t.Errorf("%s: %v %v", in, f, err)
		}
	}
	var f Fact
	if err := json.Unmarshal([]byte(`"maybe"`), &f); err == nil {
		t.Error("a fact that is none accepted")
	}
	if Unknown.Known() || !Yes.Known() || FactOf(false) != No || !OK.Ran() || Skipped.Ran() {
		t.Error("helpers")
	}
}
