package nattest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// A Capture is a real router as captured by someone who had it: its SSDP
// reply, its device descriptions (and SCPDs) by HTTP path, and SOAP replies
// by action. The corpus lives in testdata/replay, one directory per
// device, with its provenance in device.json. Raw answers are served as
// captured but for the address, the Content-Length that follows from it,
// and Connection: close.
type Capture struct {
	Name string
	Meta CaptureMeta
	// SSDP is the captured M-SEARCH reply; its LOCATION names the
	// captured address, replaced by the fake's when sent.
	SSDP string
	// Files are what GET answers, by path; Replies what a SOAP action
	// answers (a captured reply, fault or not), by action name.
	Files   map[string]File
	Replies map[string]File
	// captured is the address the capture names (LOCATION's host:port),
	// rewritten to the fake's in everything served.
	captured string
	// others are the other ports of the captured host that absolute
	// control URLs name (served by listeners of their own).
	others   []string
	controls []string // control URLs' paths (with query) of the descriptions
}

// CaptureMeta is a capture's device.json.
type CaptureMeta struct {
	Vendor string `json:"vendor"`
	Model  string `json:"model"`
	Stack  string `json:"stack"` // the UPnP stack (miniupnpd, libupnp, ...)
	// Sources say where each file comes from.
	Sources []Source `json:"sources"`
	// Handmade names files made here rather than captured, and why.
	Handmade map[string]string `json:"handmade,omitempty"`
	// Location overrides the LOCATION path when no SSDP reply was captured.
	Location string `json:"location,omitempty"`
	// Quirks are the quirks of issue 15 this device shows.
	Quirks []string `json:"quirks,omitempty"`
	// NATPMP: the device answers NAT-PMP/PCP too (else they are silent).
	NATPMP bool `json:"natpmp,omitempty"`
	// SSDPSourcePort is the port the captured SSDP reply came from, when
	// not 1900; the replay answers from it too.
	SSDPSourcePort uint16 `json:"ssdp_source_port,omitempty"`
}

// Source is where a captured file was found.
type Source struct {
	File   string `json:"file"`
	Repo   string `json:"repo"`
	Path   string `json:"path"`
	Commit string `json:"commit"`
	Note   string `json:"note,omitempty"`
}

// File is one captured HTTP answer. Raw files hold the status line and
// headers as captured (written byte for byte); others are bodies, served
// with ContentType.
type File struct {
	Raw         bool
	ContentType string
	Body        []byte
}

// LoadCapture reads a capture directory: device.json, ssdp.txt (when
// captured), http/<path> (GET answers, the path %-escaped where a file
// name cannot hold it; *.http files are raw), and soap/<Action>.http or
// soap/<Action>.xml (SOAP answers).
func LoadCapture(dir string) (*Capture, error) {
	c := &Capture{Name: filepath.Base(dir), Files: map[string]File{}, Replies: map[string]File{}}
	b, err := os.ReadFile(filepath.Join(dir, "device.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &c.Meta); err != nil {
		return nil, fmt.Errorf("%s/device.json: %w", dir, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ssdp.txt")); err == nil {
		c.SSDP = strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", "\r\n")
	}
	root := filepath.Join(dir, "http")
	err = filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = "/" + filepath.ToSlash(rel)
		if u, err := url.PathUnescape(rel); err == nil {
			rel = u // file names escape what some systems refuse (%3A for ':')
		}
		f := File{Body: body, ContentType: `text/xml; charset="utf-8"`}
		if strings.HasSuffix(rel, ".http") {
			f.Raw, rel = true, strings.TrimSuffix(rel, ".http")
		}
		c.Files[rel] = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	soap, _ := filepath.Glob(filepath.Join(dir, "soap", "*"))
	for _, p := range soap {
		body, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		name := filepath.Base(p)
		action := strings.TrimSuffix(strings.TrimSuffix(name, ".http"), ".xml")
		c.Replies[action] = File{Raw: strings.HasSuffix(name, ".http"), ContentType: `text/xml; charset="utf-8"`, Body: body}
	}
	if m := serverRE.FindStringSubmatch(c.SSDP); m != nil && c.Meta.Stack == "" {
		c.Meta.Stack = strings.TrimSpace(m[1])
	}
	loc := c.Meta.Location
	if m := locationRE.FindStringSubmatch(c.SSDP); m != nil {
		loc = m[1]
	}
	if err := c.locate(loc); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return c, nil
}

// Relocated is c with its description at loc instead (another host:port
// or path), its captured SSDP reply set aside: a variant of a capture,
// for a test that says so.
func (c *Capture) Relocated(loc string) (*Capture, error) {
	v := *c
	v.SSDP, v.controls, v.others = "", nil, nil
	if err := v.locate(loc); err != nil {
		return nil, err
	}
	return &v, nil
}

// locate sets the captured address from the description's location (a
// URL, or a path when no SSDP reply was captured), the other ports of that
// host the descriptions name, and the control URLs.
func (c *Capture) locate(loc string) error {
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		return fmt.Errorf("no LOCATION (ssdp.txt) and no location in device.json")
	}
	desc, ok := c.Files[u.Path]
	if !ok {
		return fmt.Errorf("LOCATION %s is not among the files", loc)
	}
	c.captured = u.Host
	if u.Host == "" {
		// No SSDP reply captured: the address the description itself
		// names (URLBase, absolute control URLs), if any.
		c.captured = "192.0.2.1:1900"
		if m := absoluteURLRE.FindStringSubmatch(string(desc.Body)); m != nil {
			c.captured = m[1]
		}
	}
	if c.SSDP == "" {
		c.SSDP = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
			"USN: uuid:replay::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nLOCATION: http://" + c.captured + u.Path + "\r\n\r\n"
	}
	capHost, _, _ := strings.Cut(c.captured, ":")
	for _, f := range c.Files {
		for _, m := range controlRE.FindAllStringSubmatch(string(f.Body), -1) {
			ctl := strings.TrimSpace(m[1])
			if cu, err := url.Parse(ctl); err == nil && cu.Host != "" {
				if cu.Hostname() == capHost && cu.Host != c.captured && !slices.Contains(c.others, cu.Host) {
					c.others = append(c.others, cu.Host)
				}
				ctl = cu.RequestURI()
			}
			if !strings.HasPrefix(ctl, "/") {
				ctl = "/" + ctl
			}
			c.controls = append(c.controls, ctl)
		}
	}
	return nil
}

var (
	locationRE = regexp.MustCompile(`(?im)^location:\s*(\S+)`)
	serverRE   = regexp.MustCompile(`(?im)^server:[ \t]*(.*?)\r?$`)
	controlRE  = regexp.MustCompile(`<controlURL>([^<]*)</controlURL>`)
	// absoluteURLRE finds the address a description names in URLBase or
	// an absolute control URL.
	absoluteURLRE = regexp.MustCompile(`<(?:URLBase|controlURL)>\s*https?://([^/<\s]+)`)
)

// isControl reports whether uri is one of the descriptions' control URLs.
func (c *Capture) isControl(uri string) bool {
	for _, ctl := range c.controls {
		if uri == ctl {
			return true
		}
	}
	return false
}

// ssdpReply is the captured SSDP reply naming host (the fake's host:port).
func (c *Capture) ssdpReply(host string) string {
	return strings.ReplaceAll(c.SSDP, c.captured, host)
}

// serve writes f, the captured address replaced by the fake's.
func (c *Capture) serve(w http.ResponseWriter, req *http.Request, f File, rewrite func(string, string) string) {
	// Read the request to its end first: a connection closed with unread
	// bytes is reset, and the client may lose the answer to it.
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<16))
	body := rewrite(string(f.Body), c.captured)
	if !f.Raw {
		w.Header().Set("Content-Type", f.ContentType)
		_, _ = io.WriteString(w, body)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot replay a raw capture", http.StatusInternalServerError)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, fixLength(body))
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite() // the answer ends here; close gently
	}
}

// fixLength makes a raw capture's Content-Length match its body after the
// address was rewritten, and its Connection header say close: the replay
// closes the connection after each raw answer (a captured "Keep-Alive"
// would have the client send its next request into a closed connection).
func fixLength(raw string) string {
	head, body, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok {
		return raw
	}
	head = contentLengthRE.ReplaceAllString(head, fmt.Sprintf("${1}%d", len(body)))
	if connectionRE.MatchString(head) {
		head = connectionRE.ReplaceAllString(head, "${1}close")
	} else {
		head += "\r\nConnection: close"
	}
	return head + "\r\n\r\n" + body
}

var (
	contentLengthRE = regexp.MustCompile(`(?im)^(content-length:\s*)\d+`)
	connectionRE    = regexp.MustCompile(`(?im)^(connection:[ \t]*)[^\r\n]*`)
)

// httpHost is the fake's HTTP host:port.
func (r *Router) httpHost() string { return strings.TrimPrefix(r.http.URL, "http://") }

// rewrite replaces the captured address in s by the fake's, and each
// other port of the captured host by its listener's.
func (r *Router) rewrite(s, captured string) string {
	if captured == "" {
		return s
	}
	// Longest first: "host:4444" must not eat the start of "host:44445".
	others := slices.Collect(maps.Keys(r.otherPorts))
	slices.SortFunc(others, func(a, b string) int { return len(b) - len(a) })
	for _, other := range others {
		s = strings.ReplaceAll(s, other, strings.TrimPrefix(r.otherPorts[other].URL, "http://"))
	}
	return strings.ReplaceAll(s, captured, r.httpHost())
}

// serveOtherPorts starts a listener, with the same handler, for each other
// port of the captured host the replayed descriptions name.
func (r *Router) serveOtherPorts() {
	for _, other := range r.Replay.others {
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(r.Addr, 0).String())
		if err != nil {
			r.t.Fatalf("nattest: %v", err)
		}
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(r.serveHTTP)}}
		srv.Start()
		r.t.Cleanup(srv.Close)
		if r.otherPorts == nil {
			r.otherPorts = map[string]*httptest.Server{}
		}
		r.otherPorts[other] = srv
	}
}
