package reflector

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// UDP checks: the reflector sends a datagram carrying the client's nonce
// to the request's source address, on each port asked, and says whether
// anything answered. It never sends more bytes than the request's body
// held (a client pads its request), at most UDPDatagrams per port and
// MaxUDPPorts ports per request, within a per-source datagram budget: it
// cannot amplify, and it cannot send to anyone but the requester.
const (
	MaxUDPPorts  = 16
	UDPDatagrams = 2 // per port: a second one in case the first was lost
	udpResend    = 300 * time.Millisecond
	udpPrefix    = "natdoctor-udp "
	maxUDPReply  = 512
	maxNonceLen  = 64
	minNonceLen  = 16
)

// UDPPayload is the datagram the reflector sends for nonce.
func UDPPayload(nonce string) string { return udpPrefix + nonce + "\n" }

// UDPCheck is the outcome of one UDP port.
type UDPCheck struct {
	Port uint16 `json:"port"`
	// Status: answered (a datagram came back), refused (an ICMP port
	// unreachable came back: nothing listens where the port leads),
	// silent (nothing came back), error.
	Status  string        `json:"status"`
	Reply   string        `json:"reply,omitempty"` // the answer's first bytes
	Sent    int           `json:"sent"`            // datagrams sent
	Elapsed time.Duration `json:"elapsed_ns"`
}

type udpRequest struct {
	Ports []uint16 `json:"ports"`
	Nonce string   `json:"nonce"`
	Pad   string   `json:"pad,omitempty"` // makes the request as large as what it causes
}

type udpResponse struct {
	Source netip.Addr `json:"source"`
	Checks []UDPCheck `json:"checks"`
}

func validNonce(s string) bool {
	if len(s) < minNonceLen || len(s) > maxNonceLen {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// udpBytes is how many bytes a request's datagrams add up to.
func udpBytes(ports int, nonce string) int { return ports * UDPDatagrams * len(UDPPayload(nonce)) }

func (rf *Server) serveUDP(w http.ResponseWriter, r *http.Request, src netip.Addr) {
	if r.Method != http.MethodPost {
		rf.fail(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rf.Limits.MaxBody))
	if err != nil {
		rf.fail(w, http.StatusBadRequest, "bad request body: %v", err)
		return
	}
	var req udpRequest
	if err := json.Unmarshal(body, &req); err != nil {
		rf.fail(w, http.StatusBadRequest, "bad request body: %v", err)
		return
	}
	if len(req.Ports) == 0 || len(req.Ports) > MaxUDPPorts || !validNonce(req.Nonce) {
		rf.fail(w, http.StatusBadRequest, "ask for 1 to %d ports with a nonce of %d to %d hex digits", MaxUDPPorts, minNonceLen, maxNonceLen)
		return
	}
	if !rf.portsValid(w, req.Ports) {
		return
	}
	if n := udpBytes(len(req.Ports), req.Nonce); n > len(body) {
		rf.fail(w, http.StatusBadRequest, "the datagrams (%d bytes) would be larger than the request (%d bytes): pad it", n, len(body))
		return
	}
	if ok, wait := rf.udp.allowN(src, len(req.Ports)*UDPDatagrams); !ok {
		rf.tooMany(w, "datagrams", src, wait)
		return
	}
	release, ok := rf.checkSlot(w)
	if !ok {
		return
	}
	defer release()
	out := udpResponse{Source: src, Checks: eachPort(src, req.Ports, func(a netip.AddrPort) UDPCheck {
		return rf.udpOne(r.Context(), a, UDPPayload(req.Nonce))
	})}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// udpOne sends payload to addr (again after udpResend when nothing came
// back) and waits UDPWait for an answer.
func (rf *Server) udpOne(ctx context.Context, addr netip.AddrPort, payload string) UDPCheck {
	start := time.Now()
	uc := UDPCheck{Port: addr.Port(), Status: "silent"}
	ctx, cancel := context.WithTimeout(ctx, rf.Limits.UDPWait)
	defer cancel()
	conn, err := rf.DialUDP(ctx, addr)
	if err != nil {
		uc.Status, uc.Elapsed = "error", time.Since(start)
		return uc
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, maxUDPReply)
	for uc.Sent < UDPDatagrams && ctx.Err() == nil {
		if _, err := conn.Write([]byte(payload)); err != nil {
			if isRefused(err) {
				uc.Status = "refused"
				break
			}
			uc.Status = "error"
			break
		}
		uc.Sent++
		wait := time.Now().Add(udpResend)
		if uc.Sent == UDPDatagrams {
			wait, _ = ctx.Deadline()
		}
		_ = conn.SetReadDeadline(wait)
		n, err := conn.Read(buf)
		if err == nil {
			uc.Status, uc.Reply = "answered", string(buf[:n])
			break
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if isRefused(err) {
			uc.Status = "refused"
		} else {
			uc.Status = "error"
		}
		break
	}
	uc.Elapsed = time.Since(start)
	rf.Log("udp %s: %s (%d sent)", addr, uc.Status, uc.Sent)
	return uc
}
