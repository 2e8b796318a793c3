package main

import (
	"encoding/json"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
)

// miniupnpd returns listing pages newest first: a client that pages by
// "last port + 1" sees only the first 25. 40 mappings, all listed.
func TestLabListMoreThanOnePage(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "20000-20039", "--via", "upnp")
	out, errOut, code := l.Server.Natdoctor(t, "list", "--json")
	var res struct {
		Mappings []mappingJSON `json:"mappings"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("list: exit %d %v\n%s%s", code, err, out, errOut)
	}
	if len(res.Mappings) != 40 {
		t.Errorf("listed %d of 40 mappings", len(res.Mappings))
	}
}
