package reflector

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// FuzzReflectorRequest sends arbitrary check requests to the reflector; it
// must answer without dialling anything but the request's source.
func FuzzReflectorRequest(f *testing.F) {
	f.Add([]byte(`{"ports":[21,42000]}`))
	f.Add([]byte(`{"ports":[1],"host":"192.0.2.1"}`))
	f.Add([]byte(`{"ports":[0]}`))
	rf := &Server{Dial: func(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
		if a.Addr() != netip.MustParseAddr("11.0.0.1") {
			panic("dialled " + a.String())
		}
		return nil, errors.New("connection refused")
	}}
	rf.init()
	rf.rates = newRateLimiter(1e9, 1e9)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, pathCheck, bytes.NewReader(body))
		req.RemoteAddr = "11.0.0.1:40000"
		w := httptest.NewRecorder()
		rf.ServeHTTP(w, req)
		if w.Code == 0 {
			t.Fatal("no answer")
		}
	})
}
