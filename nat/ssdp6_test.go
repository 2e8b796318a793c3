package nat

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// ssdp6Responder answers every M-SEARCH on [::1] with replies, in order.
func ssdp6Responder(t *testing.T, replies ...string) uint16 {
	t.Helper()
	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if !strings.HasPrefix(string(buf[:n]), "M-SEARCH * HTTP/1.1\r\nHOST: [::1]:") {
				continue
			}
			for _, r := range replies {
				_, _ = conn.WriteToUDPAddrPort([]byte(r), from)
			}
		}
	}()
	return uint16(conn.LocalAddr().(*net.UDPAddr).Port)
}

func TestSearchIGD6(t *testing.T) {
	good := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n" +
		"USN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\nEXT:\r\nSERVER: OpenWrt/23 UPnP/1.1 MiniUPnPd/2.3.1\r\n" +
		"LOCATION: http://[::1]:5000/rootDesc.xml\r\n\r\n"
	port := ssdp6Responder(t, "garbage\r\n\r\n", good)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, ignored, err := searchIGD6(ctx, netip.MustParseAddr("::1"), port, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Location.String() != "http://[::1]:5000/rootDesc.xml" || !strings.Contains(r.Server, "MiniUPnPd") || len(ignored) != 1 {
		t.Errorf("got %+v, ignored %q", r, ignored)
	}
}

// TestSearchIGD6Silent: nothing answers; the search ends with the context
// and says no IGD answered.
func TestSearchIGD6Silent(t *testing.T) {
	port := ssdp6Responder(t) // reads, never answers
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, _, err := searchIGD6(ctx, netip.MustParseAddr("::1"), port, false)
	if !errors.Is(err, ErrNoResponse) {
		t.Fatalf("err = %v, want ErrNoResponse", err)
	}
}
