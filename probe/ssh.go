package probe

import (
	"errors"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
)

// errGotKey ends an SSH handshake once the host key is known: natdoctor
// never authenticates.
var errGotKey = errors.New("host key read")

// recordingConn keeps the first line the server sends (its version).
type recordingConn struct {
	net.Conn
	first strings.Builder
	done  bool
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.done {
		for _, b := range p[:n] {
			if b == '\n' || c.first.Len() >= 255 {
				c.done = true
				break
			}
			c.first.WriteByte(b)
		}
	}
	return n, err
}

// sshHostKey reads an SSH server's version line and host key over conn
// (RFC 4253: the key exchange signs with the host key before any
// authentication), then hangs up.
func sshHostKey(conn net.Conn) (banner, fingerprint, detail string) {
	rc := &recordingConn{Conn: conn}
	cfg := &ssh.ClientConfig{
		User: "natdoctor",
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			fingerprint = ssh.FingerprintSHA256(key)
			return errGotKey
		},
	}
	c, _, _, err := ssh.NewClientConn(rc, conn.RemoteAddr().String(), cfg)
	if c != nil {
		c.Close()
	}
	banner = strings.TrimRight(rc.first.String(), "\r")
	if fingerprint == "" {
		if banner == "" {
			return "", "", "accepts, says nothing: " + describeNetErr(err)
		}
		if !strings.HasPrefix(banner, "SSH-") {
			return banner, "", "not an SSH server"
		}
		return banner, "", "no host key: " + describeNetErr(err)
	}
	return banner, fingerprint, ""
}
