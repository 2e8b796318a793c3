package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// parseTarget checks a HOST or HOST:PORT argument (an IPv6 literal in
// brackets when a port follows) and returns host:port, with defaultPort
// when none is given. Nothing is looked up or dialled.
func parseTarget(s string, defaultPort uint16) (string, error) {
	host, port := s, strconv.Itoa(int(defaultPort))
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.Count(s, ":") == 1 {
		return "", fmt.Errorf("%q: want HOST or HOST:PORT", s)
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return "", fmt.Errorf("%q has no host: want HOST or HOST:PORT", s)
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
		return "", fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	if _, err := parsePort(port); err != nil {
		return "", fmt.Errorf("%q: %v", s, err)
	}
	return net.JoinHostPort(host, port), nil
}

// parseListen checks a listen address: [IP]:PORT, an empty IP meaning
// every address of this host.
func parseListen(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q: want [IP]:PORT, e.g. :8021", s)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", fmt.Errorf("%q: %q is not an IP address of this host", s, host)
		}
	}
	if _, err := parsePort(port); err != nil {
		return "", fmt.Errorf("%q: %v", s, err)
	}
	return s, nil
}

// parsePort parses a port number 1-65535.
func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// validHostname reports whether s is a syntactically valid DNS name.
func validHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return false
			}
		}
	}
	return true
}
