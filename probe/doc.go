// Package probe observes a server the way its clients do: it speaks FTP
// (RFC 959, EPSV/EPRT RFC 2428, AUTH TLS RFC 4217) over any net.Conn, reads
// FTP server configuration files, and checks reachability from inside the
// network and, through a reflector, from outside it.
//
// Results are tri-state (ok, failed, skipped, error) and carry their
// evidence; the package never prints and never exits.
package probe
