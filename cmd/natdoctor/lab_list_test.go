package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
)

// miniupnpd returns listing pages newest first: a client that pages by
// "last port + 1" sees only the first page. 40 mappings, listed in one
// page and in pages of 10 (the lab's miniupnpd 2.3.1 dies on the way to
// 150 mappings, so the table stays smaller than the default page).
func TestLabListMoreThanOnePage(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	// upnpc adds one after another: the page splits, and so the request
	// count below, follow the table's order (natdoctor add sends its
	// requests in parallel, which left the order, and the count, to the
	// machine's load: 9 requests instead of 8 once in CI).
	mapUPnP(t, l.Server, seq(20000, 20039)...)
	for _, page := range []string{"100", "10"} {
		out, errOut, code := l.Server.Natdoctor(t, "list", "--json", "-v", "--page-size", page)
		var res struct {
			Mappings []mappingJSON `json:"mappings"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
			t.Fatalf("list: exit %d %v\n%s%s", code, err, out, errOut)
		}
		if len(res.Mappings) != 40 {
			t.Errorf("pages of %s: listed %d of 40 mappings", page, len(res.Mappings))
		}
		seen := map[uint16]bool{}
		for _, m := range res.Mappings {
			if m.ExternalPort < 20000 || m.ExternalPort > 20039 || seen[m.ExternalPort] {
				t.Errorf("pages of %s: unexpected or repeated %d", page, m.ExternalPort)
			}
			seen[m.ExternalPort] = true
		}
		// Discovery's GetExternalIPAddress; then with pages of 100: one page, the two sides
		// of the range (a page of 25 or more may have been cut) and UDP;
		// with pages of 10: four dense pages, the sides and UDP.
		var n int
		fmt.Sscanf(lastLine(errOut, "UPnP requests"), "trace: %d UPnP requests", &n)
		if want := map[string]int{"100": 5, "10": 8}[page]; n != want {
			t.Errorf("pages of %s: %d requests, want %d", page, n, want)
		}
	}
}

// lastLine returns the last line of s that contains sub.
func lastLine(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}
