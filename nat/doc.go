// Package nat talks to the home router that stands between a server and the
// internet. It finds the gateway and speaks the three port-mapping
// protocols a consumer router may offer: NAT-PMP (RFC 6886), PCP, the Port
// Control Protocol (RFC 6887), and UPnP Internet Gateway Device v1/v2
// (WANIPConnection and WANPPPConnection services, over SSDP, HTTP and SOAP).
//
// Everything the router says is untrusted input: every read is bounded in
// size and every wait in time. The package never prints and never exits;
// it returns typed observations and typed, wrapped errors.
package nat
