package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// FuzzFTPReplies feeds arbitrary server bytes to the FTP checker: it must
// return, bounded, whatever the server says.
func FuzzFTPReplies(f *testing.F) {
	f.Add([]byte("220-natdoctor lab server 10.0.1.2\r\n220 This is a private system - No anonymous login\r\n211-Extensions supported:\r\n EPRT\r\n211 End.\r\n331 User ok\r\n230 OK\r\n257 \"/\"\r\n227 Entering Passive Mode (127,0,0,1,164,24)\r\n"))
	f.Add([]byte("220 x\r\n211 no\r\n331 u\r\n530 Login authentication failed\r\n"))
	f.Add([]byte("220-"))
	f.Fuzz(func(t *testing.T, script []byte) {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			_ = server.SetDeadline(time.Now().Add(2 * time.Second))
			go func() { // swallow the client's commands
				buf := make([]byte, 512)
				for {
					if _, err := server.Read(buf); err != nil {
						return
					}
				}
			}()
			_, _ = server.Write(script)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		r := CheckFTP(ctx, client, "fuzz", FTPOptions{User: "u", Password: "p", Samples: 2, ReplyTimeout: 200 * time.Millisecond,
			DataTimeout: 100 * time.Millisecond,
			DialData:    func(context.Context, netip.AddrPort) (net.Conn, error) { return nil, errors.New("no data in fuzzing") }})
		if r == nil {
			t.Fatal("nil result")
		}
	})
}
