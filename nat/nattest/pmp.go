package nattest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

func (r *Router) epoch() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint32(time.Since(r.start) / time.Second)
}

// --- NAT-PMP and PCP ---

func (r *Router) servePMP() {
	buf := make([]byte, 1200)
	for {
		n, from, err := r.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if r.Silent.Load() || n < 2 || time.Now().UnixNano() < r.DeafUntil.Load() {
			continue
		}
		req := append([]byte(nil), buf[:n]...)
		var resp []byte
		if captured, ok := r.PMPReplay[[2]byte{req[0], req[1] & 0x7f}]; ok {
			resp = append([]byte(nil), captured...)
			if req[0] == 2 && req[1]&0x7f == 1 && len(req) >= 36 && len(resp) >= 36 {
				copy(resp[24:36], req[24:36]) // the MAP nonce
			}
			_, _ = r.udp.WriteToUDPAddrPort(resp, from)
			continue
		}
		switch req[0] {
		case 0:
			r.PMPRequests.Add(1)
			resp = r.pmp(req, from)
		case 2:
			r.PCPRequests.Add(1)
			resp = r.pcp(req, from)
		default:
			continue
		}
		r.changed()
		if resp == nil {
			continue
		}
		conn := r.udp
		if r.WrongSource.Load() {
			conn = r.wrong
		}
		_, _ = conn.WriteToUDPAddrPort(resp, from)
	}
}

func (r *Router) pmp(req []byte, from netip.AddrPort) []byte {
	op := req[1]
	if op == 0 {
		resp := make([]byte, 12)
		resp[1] = 128
		binary.BigEndian.PutUint16(resp[2:4], uint16(r.PMPResult.Load()))
		binary.BigEndian.PutUint32(resp[4:8], r.epoch())
		copy(resp[8:12], r.External.AsSlice())
		return resp
	}
	if (op != 1 && op != 2) || len(req) < 12 {
		resp := make([]byte, 8)
		resp[1] = 128 + op
		binary.BigEndian.PutUint16(resp[2:4], 5)
		return resp
	}
	proto := "UDP"
	if op == 2 {
		proto = "TCP"
	}
	internal := binary.BigEndian.Uint16(req[4:6])
	external := binary.BigEndian.Uint16(req[6:8])
	lifetime := binary.BigEndian.Uint32(req[8:12])
	resp := make([]byte, 16)
	resp[1] = 128 + op
	binary.BigEndian.PutUint16(resp[2:4], uint16(r.PMPResult.Load()))
	binary.BigEndian.PutUint32(resp[4:8], r.epoch())
	binary.BigEndian.PutUint16(resp[8:10], internal)
	if r.PMPResult.Load() == 0 {
		external, lifetime = r.mapFor(from.Addr().String(), proto, internal, external, lifetime, "NAT-PMP")
	}
	binary.BigEndian.PutUint16(resp[10:12], external)
	binary.BigEndian.PutUint32(resp[12:16], lifetime)
	return resp
}

// mapFor creates, renews or (lifetime 0) deletes the self-mapping of
// internal and returns the granted external port and lifetime.
func (r *Router) mapFor(client, proto string, internal, external uint16, lifetime uint32, label string) (uint16, uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lifetime == 0 {
		for k, e := range r.entries {
			if k.Proto == proto && e.InternalPort == internal && e.InternalClient == client {
				delete(r.entries, k)
			}
		}
		return 0, 0
	}
	if m := r.MoveExternal.Load(); m != 0 {
		external = uint16(m)
	}
	if e, ok := r.entries[Key{proto, external}]; ok && e.InternalClient != client {
		external = 0 // taken: pick another
	}
	if external == 0 {
		for p := uint16(50000); p < 60000; p++ {
			if _, ok := r.entries[Key{proto, p}]; !ok {
				external = p
				break
			}
		}
	}
	if lifetime > 86400 {
		lifetime = 86400
	}
	r.entries[Key{proto, external}] = Entry{InternalClient: client, InternalPort: internal, Lease: lifetime, Enabled: true,
		Description: fmt.Sprintf("%s %d %s", label, external, strings.ToLower(proto))}
	return external, lifetime
}

func (r *Router) pcp(req []byte, from netip.AddrPort) []byte {
	if r.NoPCP.Load() {
		resp := make([]byte, 8)
		resp[1] = 128 + req[1]
		binary.BigEndian.PutUint16(resp[2:4], 1) // UNSUPPORTED_VERSION, in NAT-PMP form
		return resp
	}
	if len(req) < 24 {
		return nil
	}
	op := req[1] & 0x7f
	resp := make([]byte, 24)
	resp[0] = 2
	resp[1] = 0x80 | op
	binary.BigEndian.PutUint32(resp[8:12], r.epoch())
	switch op {
	case 0: // ANNOUNCE
		return resp
	case 1: // MAP
		if len(req) < 60 {
			resp[3] = 3 // MALFORMED_REQUEST
			return resp
		}
		p := req[24:60]
		out := make([]byte, 36)
		copy(out, p)
		if r.PCPBadNonce.Load() {
			out[0] ^= 0xff
		}
		proto := "TCP"
		if p[12] == 17 {
			proto = "UDP"
		}
		lifetime := binary.BigEndian.Uint32(req[4:8])
		internal := binary.BigEndian.Uint16(p[16:18])
		external := binary.BigEndian.Uint16(p[18:20])
		if int32(external) < r.PCPRefuseBelow.Load() && lifetime > 0 {
			if len(req) >= 64 && req[60] == 2 && !r.PCPSpinAnyway.Load() { // PREFER_FAILURE: refuse at once
				resp[3] = 2 // NOT_AUTHORIZED
				return append(resp, out...)
			}
			r.DeafUntil.Store(time.Now().Add(time.Duration(r.PCPSpin.Load())).UnixNano())
			return nil
		}
		if c := r.PCPResult.Load(); c != 0 {
			resp[3] = byte(c)
		} else {
			external, lifetime = r.mapFor(from.Addr().String(), proto, internal, external, lifetime, "PCP")
		}
		binary.BigEndian.PutUint32(resp[4:8], lifetime)
		binary.BigEndian.PutUint16(out[18:20], external)
		ext := netip.AddrFrom16(netip.AddrFrom4(r.External.As4()).As16()).As16()
		ext[10], ext[11] = 0xff, 0xff
		copy(out[20:36], ext[:])
		return append(resp, out...)
	}
	resp[3] = 4 // UNSUPP_OPCODE
	return resp
}

// --- SSDP ---

// LoadPMPCapture reads a NAT-PMP/PCP capture (testdata/pmp): lines of a
// name, the request and the reply in hex; # starts a comment. It returns
// the replies by the request's version and opcode, for PMPReplay.
func LoadPMPCapture(path string) (map[[2]byte][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[[2]byte][]byte{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("%s: %q: want a name, a request and a reply", path, line)
		}
		req, err := hex.DecodeString(f[1])
		if err != nil || len(req) < 2 {
			return nil, fmt.Errorf("%s: request of %s: %v", path, f[0], err)
		}
		resp, err := hex.DecodeString(f[2])
		if err != nil {
			return nil, fmt.Errorf("%s: reply of %s: %v", path, f[0], err)
		}
		out[[2]byte{req[0], req[1] & 0x7f}] = resp
	}
	return out, nil
}
