package probe

import (
	"strings"
	"testing"
)

func TestReadFTPConfigs(t *testing.T) {
	for _, tc := range []struct {
		path, server, forced string
		clients, perIP       int
	}{
		{"testdata/pure-ftpd.conf", "Pure-FTPd", "", 15, 8},
		{"testdata/pure-ftpd-conf", "Pure-FTPd", "", 15, 8},
		{"testdata/vsftpd.conf", "vsftpd", "203.0.113.10", 15, 4},
		{"testdata/proftpd.conf", "ProFTPD", "ftp.example.org", 15, 0},
	} {
		c, err := ReadFTPConfig(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if c.Server != tc.server || c.Passive == nil || *c.Passive != (PortRange{42000, 42010}) ||
			c.ForcedAddr != tc.forced || c.MaxClients != tc.clients || c.MaxPerIP != tc.perIP || len(c.ParseErrors) != 0 {
			t.Errorf("%s: %+v passive %v", tc.path, c, c.Passive)
		}
	}
}

func TestPureFTPdArgs(t *testing.T) {
	c := ParsePureFTPdArgs(strings.Fields("pure-ftpd -l puredb:/etc/p.pdb -E -p 42000:42010 -P 11.0.0.1 -c 15 -C15"))
	if c.Passive == nil || c.Passive.Size() != 11 || c.ForcedAddr != "11.0.0.1" || c.MaxClients != 15 || c.MaxPerIP != 15 {
		t.Errorf("%+v", c)
	}
	c = ParsePureFTPdArgs([]string{"--passiveportrange=42000:42010", "--maxclientsnumber", "20"})
	if c.Passive == nil || c.MaxClients != 20 {
		t.Errorf("long forms: %+v", c)
	}
	c = ParsePureFTPdArgs([]string{"-p", "5000:4000", "-c", "many"})
	if c.Passive != nil || len(c.ParseErrors) != 2 {
		t.Errorf("bad values: %+v", c)
	}
}

func TestVsftpdWithoutRange(t *testing.T) {
	c := ParseVsftpd([]byte("pasv_enable=YES\nmax_clients=15\n"), "x")
	if c.Passive != nil || c.MaxClients != 15 {
		t.Errorf("%+v", c)
	}
	if RecommendedPassivePorts(15) != 30 || RecommendedPassivePorts(0) != 0 {
		t.Error("recommendation")
	}
}

func FuzzParseConfigs(f *testing.F) {
	f.Add([]byte("PassivePortRange 42000 42010\nMaxClientsNumber 15\n"))
	f.Add([]byte("pasv_min_port=42000\npasv_max_port=42010\n"))
	f.Add([]byte("PassivePorts 42000 42010\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParsePureFTPd(b, "f")
		ParseVsftpd(b, "f")
		ParseProFTPD(b, "f")
		ParsePureFTPdArgs(strings.Fields(string(b)))
	})
}
