package probe

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// TLSMode says whether the FTP checker secures the session with explicit
// FTPS: AUTH TLS on the control connection and PROT P for data (RFC 4217).
type TLSMode string

// TLS modes.
const (
	// TLSAuto uses TLS when FEAT offers AUTH TLS and goes on in plain text
	// when AUTH TLS is refused: FileZilla's default.
	TLSAuto TLSMode = "auto"
	// TLSOff never uses TLS.
	TLSOff TLSMode = "off"
	// TLSRequire uses TLS whatever FEAT says and stops when it fails.
	TLSRequire TLSMode = "require"
)

// ParseTLSMode parses "auto", "off" or "require".
func ParseTLSMode(s string) (TLSMode, error) {
	switch m := TLSMode(s); m {
	case TLSAuto, TLSOff, TLSRequire:
		return m, nil
	}
	return "", fmt.Errorf("TLS mode %q: want auto, off or require", s)
}

// TLSInfo is what setting up FTPS showed.
type TLSInfo struct {
	Status      Status `json:"status"`
	Error       string `json:"error,omitempty"`
	Version     string `json:"version,omitempty"`
	CipherSuite string `json:"cipher_suite,omitempty"`
	// The server's certificate, and whether this system trusts it for
	// the name or address dialled (clients that do not ask to accept it).
	Subject     string    `json:"certificate_subject,omitempty"`
	Issuer      string    `json:"certificate_issuer,omitempty"`
	NotAfter    time.Time `json:"certificate_not_after,omitzero"`
	Fingerprint string    `json:"certificate_sha256,omitempty"`
	Trusted     bool      `json:"certificate_trusted"`
	TrustError  string    `json:"certificate_error,omitempty"`
	// ProtectedData: PROT P was accepted, so data connections use TLS too.
	ProtectedData bool `json:"protected_data"`
	// PlainAfter: the server refused AUTH TLS and the session went on in
	// plain text (--tls auto), as FileZilla's "if available" does.
	PlainAfter bool `json:"went_on_in_plain_text,omitempty"`
}

// TLSRequired reports whether a refused login reply says that the server
// accepts logins over TLS only.
func TLSRequired(code int, text string) bool {
	if code == 534 {
		return true
	}
	t := strings.ToLower(text)
	refused := code/100 == 5 || code == 421 // Pure-FTPd with TLS 2: 421, and it hangs up
	for _, w := range []string{"tls", "ssl", "cleartext", "clear text", "encrypt"} {
		if refused && strings.Contains(t, w) {
			return true
		}
	}
	return false
}

// startTLS sends AUTH TLS and, on 234, makes the control connection a TLS
// client connection. It reports whether the session can go on.
func (c *ftpConn) startTLS(ctx context.Context, opts FTPOptions, serverName string) bool {
	info := &TLSInfo{Status: Failed}
	c.res.TLS = info
	code, rep, err := c.cmd(ctx, "AUTH TLS", "AUTH TLS")
	if err != nil && code == 0 {
		info.Error = "connection lost at AUTH TLS: " + describeNetErr(err)
		return false
	}
	if code != 234 {
		info.Error = fmt.Sprintf("AUTH TLS answered %d: %s", code, strings.Join(rep, " "))
		if opts.TLS == TLSRequire {
			c.quit(ctx)
			return false
		}
		info.PlainAfter = true
		return true
	}
	// The certificate is checked below and reported, not enforced: a
	// self-signed one is common at home, and clients ask to accept it.
	c.tlsConfig = &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
		// Data connections resume the control session (vsftpd requires it).
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
	tc := tls.Client(c.conn, c.tlsConfig)
	hctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	if err := tc.HandshakeContext(hctx); err != nil {
		info.Error = "TLS handshake: " + err.Error()
		c.res.Transcript = append(c.res.Transcript, Exchange{Command: "(TLS handshake)", Elapsed: time.Since(start), Error: err.Error()})
		return false
	}
	st := tc.ConnectionState()
	c.res.Transcript = append(c.res.Transcript, Exchange{Command: "(TLS handshake)", Elapsed: time.Since(start),
		Reply: []string{tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)}})
	info.Status = OK
	info.Version, info.CipherSuite = tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)
	describeCert(info, st.PeerCertificates, serverName)
	c.conn = tc
	c.budget.r = tc
	c.r = textproto.NewReader(bufio.NewReaderSize(c.budget, 4096))
	c.w = textproto.NewWriter(bufio.NewWriter(tc))
	return true
}

// protectData asks for TLS on data connections (PBSZ 0, PROT P).
func (c *ftpConn) protectData(ctx context.Context) {
	if code, _, err := c.cmd(ctx, "PBSZ 0", "PBSZ 0"); err != nil || code/100 != 2 {
		return
	}
	if code, _, err := c.cmd(ctx, "PROT P", "PROT P"); err == nil && code/100 == 2 {
		c.res.TLS.ProtectedData = true
		c.dataTLS = true
	}
}

// secureData makes a data connection a TLS client connection, resuming
// the control connection's session where the server allows.
func (c *ftpConn) secureData(ctx context.Context, data net.Conn, timeout time.Duration) (net.Conn, error) {
	tc := tls.Client(data, c.tlsConfig)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, fmt.Errorf("TLS on the data connection: %w", err)
	}
	return tc, nil
}

// describeCert records the leaf certificate and whether this system
// trusts it for name.
func describeCert(info *TLSInfo, chain []*x509.Certificate, name string) {
	if len(chain) == 0 {
		info.TrustError = "no certificate"
		return
	}
	leaf := chain[0]
	sum := sha256.Sum256(leaf.Raw)
	info.Subject, info.Issuer, info.NotAfter = leaf.Subject.String(), leaf.Issuer.String(), leaf.NotAfter.UTC()
	info.Fingerprint = hex.EncodeToString(sum[:])
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Intermediates: inter}); err != nil {
		info.TrustError = err.Error()
		return
	}
	info.Trusted = true
}
