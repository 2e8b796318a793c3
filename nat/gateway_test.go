package nat

import (
	"errors"
	"net"
	"testing"
)

func TestPickGatewayGuards(t *testing.T) {
	// A device-only default route: jackpal/gateway reports 0.0.0.0 with no error.
	if _, err := pickGateway([]net.IP{net.IPv4zero}); !errors.Is(err, ErrNoGateway) {
		t.Errorf("0.0.0.0 accepted: %v", err)
	}
	if _, err := pickGateway(nil); !errors.Is(err, ErrNoGateway) {
		t.Errorf("no routes: %v", err)
	}
	gw, err := pickGateway([]net.IP{net.IPv4zero, net.ParseIP("fe80::1"), net.ParseIP("10.0.1.1")})
	if err != nil || gw.String() != "10.0.1.1" {
		t.Errorf("picked %v, %v", gw, err)
	}
}
