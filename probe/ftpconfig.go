package probe

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxConfigBytes bounds a server configuration file.
const maxConfigBytes = 1 << 20

// FTPConfig is what an FTP server's configuration says about passive
// mode and client limits. Zero values mean "not set".
type FTPConfig struct {
	Server      string     `json:"server"` // Pure-FTPd, vsftpd, ProFTPD
	Source      string     `json:"source"` // file, directory or command line
	Passive     *PortRange `json:"passive_range,omitempty"`
	ForcedAddr  string     `json:"forced_address,omitempty"` // advertised in PASV replies
	MaxClients  int        `json:"max_clients,omitempty"`
	MaxPerIP    int        `json:"max_per_ip,omitempty"`
	PassiveOff  bool       `json:"passive_disabled,omitempty"`
	ParseErrors []string   `json:"parse_errors,omitempty"`
}

// Well-known configuration paths, tried in order by DetectFTPConfig.
var knownConfigs = []string{
	"/etc/pure-ftpd/conf", // Debian's one-file-per-option directory
	"/etc/pure-ftpd/pure-ftpd.conf",
	"/etc/pure-ftpd.conf",
	"/usr/local/etc/pure-ftpd.conf",
	"/etc/vsftpd.conf",
	"/etc/vsftpd/vsftpd.conf",
	"/etc/proftpd/proftpd.conf",
	"/etc/proftpd.conf",
}

// DetectFTPConfig reads the first known FTP server configuration on this
// host, or returns nil. (A running pure-ftpd's command line cannot be read
// back: it overwrites it with "pure-ftpd (SERVER)".)
func DetectFTPConfig() *FTPConfig {
	for _, p := range knownConfigs {
		if _, err := os.Stat(p); err == nil {
			if c, err := ReadFTPConfig(p); err == nil {
				return c
			}
		}
	}
	return nil
}

// ReadFTPConfig reads a Pure-FTPd, vsftpd or ProFTPD configuration file,
// or Debian's /etc/pure-ftpd/conf directory.
func ReadFTPConfig(path string) (*FTPConfig, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return readPureFTPdDir(path)
	}
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.Contains(base, "vsftpd"):
		return ParseVsftpd(b, path), nil
	case strings.Contains(base, "proftpd"):
		return ParseProFTPD(b, path), nil
	case strings.Contains(base, "pure"):
		return ParsePureFTPd(b, path), nil
	}
	// Guess from the content.
	s := string(b)
	switch {
	case strings.Contains(s, "pasv_") || strings.Contains(s, "listen="):
		return ParseVsftpd(b, path), nil
	case strings.Contains(s, "PassivePorts") || strings.Contains(s, "<Directory"):
		return ParseProFTPD(b, path), nil
	}
	return ParsePureFTPd(b, path), nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigBytes)
	}
	return b, nil
}

// lines returns the non-comment lines of a configuration file.
func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

func atoiField(c *FTPConfig, key, v string) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		c.ParseErrors = append(c.ParseErrors, fmt.Sprintf("%s %q is not a number", key, v))
		return 0
	}
	return n
}

func rangeField(c *FTPConfig, key, lo, hi string) {
	r, err := ParsePortRange(strings.TrimSpace(lo) + "-" + strings.TrimSpace(hi))
	if err != nil {
		c.ParseErrors = append(c.ParseErrors, fmt.Sprintf("%s: %v", key, err))
		return
	}
	c.Passive = &r
}

// ParsePureFTPd parses pure-ftpd.conf ("PassivePortRange 42000 42010",
// "ForcePassiveIP", "MaxClientsNumber", "MaxClientsPerIP").
func ParsePureFTPd(b []byte, source string) *FTPConfig {
	c := &FTPConfig{Server: "Pure-FTPd", Source: source}
	for _, l := range lines(b) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		pureOption(c, f[0], f[1:])
	}
	return c
}

func pureOption(c *FTPConfig, key string, v []string) {
	switch strings.ToLower(key) {
	case "passiveportrange":
		if len(v) >= 2 {
			rangeField(c, key, v[0], v[1])
		} else if len(v) == 1 {
			lo, hi, _ := strings.Cut(v[0], ":")
			rangeField(c, key, lo, hi)
		}
	case "forcepassiveip":
		c.ForcedAddr = v[0]
	case "maxclientsnumber":
		c.MaxClients = atoiField(c, key, v[0])
	case "maxclientsperip":
		c.MaxPerIP = atoiField(c, key, v[0])
	}
}

// readPureFTPdDir reads Debian's /etc/pure-ftpd/conf: one file per option,
// named after it, holding its value.
func readPureFTPdDir(dir string) (*FTPConfig, error) {
	c := &FTPConfig{Server: "Pure-FTPd", Source: dir}
	for _, opt := range []string{"PassivePortRange", "ForcePassiveIP", "MaxClientsNumber", "MaxClientsPerIP"} {
		b, err := readBounded(filepath.Join(dir, opt))
		if err != nil {
			continue
		}
		if v := strings.Fields(string(b)); len(v) > 0 {
			pureOption(c, opt, v)
		}
	}
	return c, nil
}

// ParsePureFTPdArgs reads pure-ftpd's command-line flags: -p LOW:HIGH,
// -P ADDR, -c N, -C N (and their long forms).
func ParsePureFTPdArgs(args []string) *FTPConfig {
	c := &FTPConfig{Server: "Pure-FTPd", Source: "command line"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		key, val, hasVal := strings.Cut(a, "=")
		next := func() string {
			if hasVal {
				return val
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		short := func(flag string) (string, bool) {
			if a == flag {
				return next(), true
			}
			if strings.HasPrefix(a, flag) && len(a) > 2 && !strings.HasPrefix(a, "--") {
				return a[2:], true
			}
			return "", false
		}
		if v, ok := short("-p"); ok || key == "--passiveportrange" {
			if !ok {
				v = next()
			}
			lo, hi, _ := strings.Cut(v, ":")
			rangeField(c, "-p", lo, hi)
		} else if v, ok := short("-P"); ok || key == "--forcepassiveip" {
			if !ok {
				v = next()
			}
			c.ForcedAddr = v
		} else if v, ok := short("-c"); ok || key == "--maxclientsnumber" {
			if !ok {
				v = next()
			}
			c.MaxClients = atoiField(c, "-c", v)
		} else if v, ok := short("-C"); ok || key == "--maxclientsperip" {
			if !ok {
				v = next()
			}
			c.MaxPerIP = atoiField(c, "-C", v)
		}
	}
	return c
}

// ParseVsftpd parses vsftpd.conf (key=value).
func ParseVsftpd(b []byte, source string) *FTPConfig {
	c := &FTPConfig{Server: "vsftpd", Source: source}
	var lo, hi string
	for _, l := range lines(b) {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "pasv_min_port":
			lo = v
		case "pasv_max_port":
			hi = v
		case "pasv_address":
			c.ForcedAddr = v
		case "max_clients":
			c.MaxClients = atoiField(c, k, v)
		case "max_per_ip":
			c.MaxPerIP = atoiField(c, k, v)
		case "pasv_enable":
			c.PassiveOff = strings.EqualFold(v, "NO")
		}
	}
	// vsftpd's default 0 for either bound means "any port".
	if lo != "" && hi != "" && lo != "0" && hi != "0" {
		rangeField(c, "pasv_min_port/pasv_max_port", lo, hi)
	}
	return c
}

// ParseProFTPD parses proftpd.conf (PassivePorts, MasqueradeAddress, MaxClients).
func ParseProFTPD(b []byte, source string) *FTPConfig {
	c := &FTPConfig{Server: "ProFTPD", Source: source}
	for _, l := range lines(b) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch strings.ToLower(f[0]) {
		case "passiveports":
			if len(f) >= 3 {
				rangeField(c, f[0], f[1], f[2])
			}
		case "masqueradeaddress":
			c.ForcedAddr = f[1]
		case "maxclients":
			if !strings.EqualFold(f[1], "none") {
				c.MaxClients = atoiField(c, f[0], f[1])
			}
		case "maxclientsperhost":
			if !strings.EqualFold(f[1], "none") {
				c.MaxPerIP = atoiField(c, f[0], f[1])
			}
		}
	}
	return c
}

// RecommendedPassivePorts returns how many passive ports a server that
// allows maxClients sessions needs: every session may hold a data
// connection at the same time, and a port just closed lingers before it can
// be used again, so twice the sessions leaves room. 0 when unknown.
func RecommendedPassivePorts(maxClients int) int {
	if maxClients <= 0 {
		return 0
	}
	return 2 * maxClients
}
