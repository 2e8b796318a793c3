package reflector

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// udpSink listens on a loopback UDP port and records what arrives; echo
// makes it answer each datagram with itself.
type udpSink struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []string
	from []string
}

func newUDPSink(t *testing.T, echo bool) *udpSink {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &udpSink{conn: c}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.got, s.from = append(s.got, string(buf[:n])), append(s.from, from.IP.String())
			s.mu.Unlock()
			if echo {
				_, _ = c.WriteToUDP(buf[:n], from)
			}
		}
	}()
	return s
}

func (s *udpSink) port() uint16 { return uint16(s.conn.LocalAddr().(*net.UDPAddr).Port) }

func (s *udpSink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

const testNonce = "0123456789abcdef0123456789abcdef"

func testUDPLimits() Limits {
	l := DefaultLimits()
	l.UDPWait = 2 * time.Second
	return l
}

func TestUDPOutcomes(t *testing.T) {
	c, _ := startReflector(t, &Server{AllowPrivate: true, Limits: testUDPLimits()})
	echo, silent := newUDPSink(t, true), newUDPSink(t, false)
	// A port where nothing listens: the kernel answers ICMP port unreachable.
	closed := newUDPSink(t, false)
	closedPort := closed.port()
	closed.conn.Close()
	checks, err := c.UDP(context.Background(), []uint16{echo.port(), silent.port(), closedPort}, testNonce)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"answered", "silent", "refused"}
	for i, uc := range checks {
		if uc.Status != want[i] {
			t.Errorf("port %d: %s, want %s", uc.Port, uc.Status, want[i])
		}
	}
	if checks[0].Reply != UDPPayload(testNonce) {
		t.Errorf("echo reply %q", checks[0].Reply)
	}
	// The silent port got the datagram, twice at most, and nothing else.
	got := silent.received()
	if len(got) == 0 || len(got) > UDPDatagrams {
		t.Fatalf("silent port got %d datagrams, want 1 to %d", len(got), UDPDatagrams)
	}
	for _, g := range got {
		if g != UDPPayload(testNonce) {
			t.Errorf("datagram %q, want the nonce's", g)
		}
	}
	if checks[1].Sent != len(got) {
		t.Errorf("reflector says %d sent, the port got %d", checks[1].Sent, len(got))
	}
}

// postUDP sends a raw /v1/udp request and returns the status and the reply.
func postUDP(t *testing.T, addr, body string) (int, udpResponse) {
	t.Helper()
	resp, err := http.Post("http://"+addr+pathUDP, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out udpResponse
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestUDPAbuse(t *testing.T) {
	lim := testUDPLimits()
	lim.UDPPerSourceBurst, lim.UDPPerSourceRate = 3*UDPDatagrams, 0.001
	lim.UDPWait = 400 * time.Millisecond // the sink is silent: each request waits this long
	_, addr := startReflector(t, &Server{AllowPrivate: true, Limits: lim})
	sink := newUDPSink(t, false)
	port := sink.port()
	pad := strings.Repeat("-", udpBytes(1, testNonce))
	p := func(body string) string { return strings.ReplaceAll(body, "PORT", itoa(port)) }

	// The datagrams may not be larger than the request: unpadded is refused.
	if code, _ := postUDP(t, addr, p(`{"ports":[PORT],"nonce":"`+testNonce+`"}`)); code != http.StatusBadRequest {
		t.Errorf("unpadded request: %d, want 400", code)
	}
	// Only hex nonces: the reflector chooses what its datagrams say.
	if code, _ := postUDP(t, addr, p(`{"ports":[PORT],"nonce":"GET / HTTP/1.0 xxxxxxxx","pad":"`+pad+`"}`)); code != http.StatusBadRequest {
		t.Errorf("non-hex nonce: %d, want 400", code)
	}
	many := strings.TrimSuffix(strings.Repeat(itoa(port)+",", MaxUDPPorts+1), ",")
	if code, _ := postUDP(t, addr, `{"ports":[`+many+`],"nonce":"`+testNonce+`","pad":"`+strings.Repeat("-", 3000)+`"}`); code != http.StatusBadRequest {
		t.Errorf("%d ports: %d, want 400", MaxUDPPorts+1, code)
	}
	// An address in the request is ignored: datagrams go to the source.
	code, out := postUDP(t, addr, p(`{"ports":[PORT],"nonce":"`+testNonce+`","pad":"`+pad+`","address":"192.0.2.1","host":"192.0.2.1"}`))
	if code != http.StatusOK || out.Source.String() != "127.0.0.1" {
		t.Fatalf("padded request: %d, source %v", code, out.Source)
	}
	// The per-source datagram budget (3 requests' worth) runs out.
	limited := 0
	for range 6 {
		if c, _ := postUDP(t, addr, p(`{"ports":[PORT],"nonce":"`+testNonce+`","pad":"`+pad+`"}`)); c == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 4 {
		t.Errorf("only %d of 6 requests past the budget were refused", limited)
	}
	got := sink.received()
	if len(got) > 3*UDPDatagrams {
		t.Errorf("%d datagrams arrived, budget %d", len(got), 3*UDPDatagrams)
	}
	total := 0
	for i, g := range got {
		total += len(g)
		if sink.from[i] != "127.0.0.1" {
			t.Errorf("datagram from %s", sink.from[i])
		}
	}
	if reqBytes := len(p(`{"ports":[PORT],"nonce":"` + testNonce + `","pad":"` + pad + `"}`)); total > 3*reqBytes {
		t.Errorf("%d bytes sent for 3 requests of %d bytes", total, reqBytes)
	}
}

func itoa(p uint16) string { b, _ := json.Marshal(p); return string(b) }
