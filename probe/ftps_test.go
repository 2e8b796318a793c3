package probe

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/probe/ftptest"
)

// selfSigned returns a server configuration with a self-signed
// certificate for 127.0.0.1, as a home server has.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "natdoctor test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func TestFTPSExplicitTLS(t *testing.T) {
	f := &ftptest.Server{Password: "pw", TLSConfig: selfSigned(t)}
	r := walkFake(t, f, FTPOptions{User: "u", Password: "pw"})
	if r.AuthTLS != OK || r.TLS == nil || r.TLS.Status != OK {
		t.Fatalf("TLS not set up: auth %s, %+v", r.AuthTLS, r.TLS)
	}
	if !r.TLS.ProtectedData {
		t.Error("PROT P not recorded")
	}
	if r.TLS.Trusted || r.TLS.TrustError == "" || r.TLS.Subject != "CN=natdoctor test" || len(r.TLS.Fingerprint) != 64 {
		t.Errorf("certificate: %+v", r.TLS)
	}
	if r.Login != OK || r.List != OK {
		t.Fatalf("login %s, list %s: %+v", r.Login, r.List, r.Data)
	}
	got := strings.Join(f.Received(), "\n")
	if !strings.Contains(got, "AUTH TLS") || !strings.Contains(got, "PROT P") {
		t.Errorf("commands: %q", got)
	}
	// The password went inside TLS: the fake records it after the handshake
	// only because it read it through the TLS connection.
	if strings.Index(got, "AUTH TLS") > strings.Index(got, "PASS") {
		t.Error("PASS sent before AUTH TLS")
	}
}

func TestFTPSOffStaysPlain(t *testing.T) {
	f := &ftptest.Server{Password: "pw", TLSConfig: selfSigned(t)}
	r := walkFake(t, f, FTPOptions{User: "u", Password: "pw", TLS: TLSOff})
	if r.TLS != nil || r.AuthTLS != OK || r.Login != OK || r.List != OK {
		t.Fatalf("auth %s tls %+v login %s list %s", r.AuthTLS, r.TLS, r.Login, r.List)
	}
	if strings.Contains(strings.Join(f.Received(), "\n"), "AUTH") {
		t.Error("AUTH sent with TLS off")
	}
}

func TestFTPSRequiredByServer(t *testing.T) {
	f := &ftptest.Server{Password: "pw", TLSConfig: selfSigned(t), RequireTLS: true}
	r := walkFake(t, f, FTPOptions{User: "u", Password: "pw", TLS: TLSOff})
	if r.Login != Failed || !TLSRequired(r.LoginCode, r.LoginText) {
		t.Fatalf("login %s %d %q: not seen as TLS-only", r.Login, r.LoginCode, r.LoginText)
	}
	if TLSRequired(530, "Login authentication failed") {
		t.Error("a wrong password read as TLS-only")
	}
	// Pure-FTPd with TLS 2 (lab capture): 421, and it hangs up.
	if !TLSRequired(421, "Please reconnect using TLS security mechanisms.") {
		t.Error("Pure-FTPd's TLS-only reply not recognised")
	}
}

func TestFTPSRequireWithoutServerTLS(t *testing.T) {
	r := walkFake(t, &ftptest.Server{Password: "pw"}, FTPOptions{User: "u", Password: "pw", TLS: TLSRequire})
	if r.TLS == nil || r.TLS.Status != Failed || !strings.Contains(r.TLS.Error, "AUTH TLS answered 500") {
		t.Fatalf("tls %+v", r.TLS)
	}
	if r.Login != Skipped || r.TLS.PlainAfter {
		t.Errorf("logged in (%s) or went on in plain text (%v) although TLS was required and failed", r.Login, r.TLS.PlainAfter)
	}
}

func TestFTPSAutoGoesOnWhenAuthRefused(t *testing.T) {
	// FEAT offers AUTH TLS, but the command is refused: go on in plain
	// text, as FileZilla's "if available" does, and say so.
	f := &ftptest.Server{Password: "pw", TLSConfig: selfSigned(t), RefuseAuth: true}
	r := walkFake(t, f, FTPOptions{User: "u", Password: "pw"})
	if r.TLS == nil || r.TLS.Status != Failed || !strings.Contains(r.TLS.Error, "AUTH TLS answered 431") {
		t.Fatalf("tls %+v", r.TLS)
	}
	if r.Login != OK || r.List != OK || !r.TLS.PlainAfter {
		t.Errorf("login %s, list %s, plain after %v after a refused AUTH TLS", r.Login, r.List, r.TLS.PlainAfter)
	}
}

func TestFTPSBrokenHandshake(t *testing.T) {
	f := &ftptest.Server{Password: "pw", TLSConfig: selfSigned(t), BrokenTLS: true}
	r := walkFake(t, f, FTPOptions{User: "u", Password: "pw"})
	if r.TLS == nil || r.TLS.Status != Failed || !strings.Contains(r.TLS.Error, "handshake") {
		t.Fatalf("tls %+v", r.TLS)
	}
	if r.Login != Skipped {
		t.Errorf("login %s after a failed handshake", r.Login)
	}
}
