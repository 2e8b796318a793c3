// Package ftptest provides a scripted FTP server (RFC 959, with RFC 2428
// EPSV and RFC 4217 AUTH TLS) for tests, as net/http/httptest does for
// HTTP: Pure-FTPd's replies by default, and switches for the ways real
// servers misbehave.
package ftptest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a scripted FTP server for tests: Pure-FTPd's replies by
// default, and switches for the ways real servers misbehave.
type Server struct {
	Banner     string        // full greeting, CRLF-terminated lines
	Password   string        // accepted for any user
	Advertise  string        // PASV address as "h1,h2,h3,h4"; "" advertises the listening address
	Silent     bool          // never greet
	GreetDelay time.Duration // greet this late (a server resolving the client's name)
	Endless    bool          // greet with a line that never ends
	Listing    string        // LIST body
	HugeList   int           // LIST body size in bytes, overriding Listing
	Garbage227 bool          // malformed PASV reply
	// PassiveReply, when set, answers PASV and EPSV (vsftpd with
	// pasv_enable=NO: "550 Permission denied.").
	PassiveReply string
	// ListReply, when set, answers LIST once the data connection is open
	// (a home the account may not read: "550 Can't open directory"); a 2xx
	// reply follows a 150 and an empty listing ("226 Sorry, we were unable
	// to read [.]", Pure-FTPd's).
	ListReply  string
	NoFeat     bool
	TLSConfig  *tls.Config // offer AUTH TLS with this certificate
	RequireTLS bool        // refuse USER before AUTH TLS
	BrokenTLS  bool        // answer AUTH TLS with 234, then garbage
	RefuseAuth bool        // offer AUTH TLS in FEAT, refuse the command
	NoChroot   bool        // the session sees the whole disk from /home/u
	// OnCommand (setup), when set, is told each command's verb as it
	// arrives, before the reply.
	OnCommand func(verb string)
	// Addr is where to listen ("127.0.0.1:0" when empty).
	Addr string
	// PassiveLow and PassiveHigh, when set, are the passive range: each
	// PASV listens on a free port of it, as a configured server does.
	PassiveLow, PassiveHigh uint16

	ln       net.Listener
	mu       sync.Mutex
	received []string
}

// Received returns the command lines the server has read, in order.
func (f *Server) Received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.received)
}

// Start listens and serves until t ends; it returns the address.
func (f *Server) Start(t testing.TB) string {
	t.Helper()
	addr := f.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return ln.Addr().String()
}

func (f *Server) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if f.Silent {
		buf := make([]byte, 1)
		_, _ = c.Read(buf)
		return
	}
	if f.GreetDelay > 0 {
		time.Sleep(f.GreetDelay) // the server's own slowness, not test synchronisation
	}
	if f.Endless {
		chunk := []byte("220 " + strings.Repeat("x", 4096))
		for i := 0; i < 10000; i++ {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		return
	}
	banner := f.Banner
	if banner == "" {
		banner = "220-Welcome to Pure-FTPd [privsep]\r\n220-You are user number 1 of 15 allowed.\r\n220 This is a private system\r\n"
	}
	w := bufio.NewWriter(c)
	secured, protected := false, false
	w.WriteString(banner)
	w.Flush()
	r := bufio.NewReader(c)
	var pasvLn net.Listener
	defer func() {
		if pasvLn != nil {
			pasvLn.Close()
		}
	}()
	user := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.received = append(f.received, line)
		f.mu.Unlock()
		verb, arg, _ := strings.Cut(line, " ")
		if f.OnCommand != nil {
			f.OnCommand(strings.ToUpper(verb))
		}
		reply := ""
		switch strings.ToUpper(verb) {
		case "FEAT":
			if f.NoFeat {
				reply = "500 Unknown command\r\n"
			} else {
				reply = "211-Extensions supported:\r\n EPRT\r\n PASV\r\n EPSV\r\n"
				if f.TLSConfig != nil {
					reply += " AUTH TLS\r\n PBSZ\r\n PROT\r\n"
				}
				reply += "211 End.\r\n"
			}
		case "AUTH":
			if f.TLSConfig == nil {
				reply = "500 Unknown command\r\n"
				break
			}
			if f.RefuseAuth {
				reply = "431 Unable to accept security mechanism\r\n"
				break
			}
			w.WriteString("234 AUTH TLS OK.\r\n")
			w.Flush()
			if f.BrokenTLS {
				c.Write([]byte("this is not a TLS server hello\r\n"))
				return
			}
			tc := tls.Server(c, f.TLSConfig)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, secured = tc, true
			r, w = bufio.NewReader(c), bufio.NewWriter(c)
			continue
		case "PBSZ":
			reply = "200 PBSZ=0\r\n"
		case "PROT":
			protected = secured && strings.EqualFold(arg, "P")
			reply = "200 Data protection level set to private\r\n"
		case "USER":
			if f.RequireTLS && !secured {
				reply = "530 Sorry, cleartext sessions and weak ciphers are not accepted on this server.\r\n"
				break
			}
			user = arg
			reply = "331 User " + arg + " OK. Password required\r\n"
		case "PASS":
			if user != "" && arg == f.Password {
				reply = "230 OK. Current directory is /\r\n"
			} else {
				reply = "530 Login authentication failed\r\n"
			}
		case "PWD":
			reply = "257 \"/\" is your current location\r\n"
			if f.NoChroot {
				reply = "257 \"/home/u\" is your current location\r\n"
			}
		case "CWD":
			reply = "550 Can't change directory to " + arg + ": No such file or directory\r\n"
			if f.NoChroot || !strings.HasPrefix(arg, "/etc") && !strings.HasPrefix(arg, "/usr") {
				reply = "250 OK. Current directory is " + arg + "\r\n"
			}
		case "PASV", "EPSV":
			if f.PassiveReply != "" {
				reply = f.PassiveReply + "\r\n"
				break
			}
			if pasvLn != nil {
				pasvLn.Close()
			}
			pasvLn = f.listenPassive()
			if pasvLn == nil {
				reply = "421 Could not open a passive connection\r\n"
				break
			}
			port := pasvLn.Addr().(*net.TCPAddr).Port
			if verb == "EPSV" {
				reply = fmt.Sprintf("229 Extended Passive mode OK (|||%d|)\r\n", port)
			} else if f.Garbage227 {
				reply = "227 Entering Passive Mode (300,x,1)\r\n"
			} else {
				adv := f.Advertise
				if adv == "" {
					ip := f.ln.Addr().(*net.TCPAddr).IP.To4()
					adv = fmt.Sprintf("%d,%d,%d,%d", ip[0], ip[1], ip[2], ip[3])
				}
				reply = fmt.Sprintf("227 Entering Passive Mode (%s,%d,%d)\r\n", adv, port>>8, port&255)
			}
		case "LIST":
			if pasvLn == nil {
				reply = "425 No data connection\r\n"
				break
			}
			_ = pasvLn.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
			dc, err := pasvLn.Accept()
			if err != nil {
				reply = "425 No data connection\r\n"
				break
			}
			if f.ListReply != "" {
				if strings.HasPrefix(f.ListReply, "2") {
					// A "success" over nothing, as Pure-FTPd does for a
					// directory it cannot read.
					w.WriteString("150 Accepted data connection\r\n")
					w.Flush()
				}
				dc.Close()
				reply = f.ListReply + "\r\n"
				break
			}
			w.WriteString("150 Accepted data connection\r\n")
			w.Flush()
			if protected {
				dc = tls.Server(dc, f.TLSConfig)
			}
			if f.HugeList > 0 {
				chunk := []byte(strings.Repeat("-rw-r--r-- 1 u g 1 Jan 1 00:00 f\n", 1000))
				for sent := 0; sent < f.HugeList; sent += len(chunk) {
					if _, err := dc.Write(chunk); err != nil {
						break
					}
				}
				dc.Close()
				reply = "426 Transfer aborted\r\n"
				break
			}
			body := f.Listing
			if body == "" {
				body = "-rw-r--r--    1 65534      nogroup            19 Dec  1 02:50 file1.txt\r\n"
			}
			dc.Write([]byte(body))
			reply = "226 Transfer complete\r\n"
			if tc, ok := dc.(*tls.Conn); ok {
				// As Pure-FTPd: close_notify, then wait for the client's
				// before the final reply.
				_ = tc.CloseWrite()
				_ = tc.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := io.Copy(io.Discard, tc); err != nil {
					reply = "426 Data connection not closed by the client\r\n"
				}
			}
			dc.Close()
		case "QUIT":
			w.WriteString("221 Goodbye\r\n")
			w.Flush()
			return
		default:
			reply = "500 Unknown command\r\n"
		}
		w.WriteString(reply)
		w.Flush()
	}
}

// listenPassive listens for one data connection on the listening address:
// on a free port of the passive range when one is set.
func (f *Server) listenPassive() net.Listener {
	host := f.ln.Addr().(*net.TCPAddr).IP.String()
	if f.PassiveLow == 0 {
		ln, err := net.Listen("tcp4", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil
		}
		return ln
	}
	n := int(f.PassiveHigh) - int(f.PassiveLow) + 1
	first := rand.IntN(n)
	for i := 0; i < n; i++ {
		port := int(f.PassiveLow) + (first+i)%n
		if ln, err := net.Listen("tcp4", net.JoinHostPort(host, fmt.Sprint(port))); err == nil {
			return ln
		}
	}
	return nil
}
