package report

import (
	"fmt"
	"strings"

	"github.com/natdoctor/natdoctor/probe"
)

// routerPlace names where the router's admin tool keeps a setting ("dmz",
// "forward" or "upnp"): a place only, to follow "in", never an instruction.
// A guess says so after a comma, without parentheses.
func (o *Observations) routerPlace(setting string) string {
	d := o.Discovery
	var who string
	if d != nil && d.UPnP.Device != nil {
		who = strings.ToLower(d.UPnP.Device.Manufacturer + " " + d.UPnP.Device.ModelName + " " + d.UPnP.Device.FriendlyName + " " + d.UPnP.Device.Server)
	}
	var places map[string]string
	guess := ""
	switch {
	case strings.Contains(who, "apple") || strings.Contains(who, "airport"),
		d != nil && d.UPnP.Device == nil && d.NATPMP.Answered():
		places = map[string]string{
			"dmz":     `AirPort Utility > (base station) > Edit > Network > Network Options > "Default Host"`,
			"forward": "AirPort Utility > (base station) > Edit > Network > Port Settings",
			"upnp":    `AirPort Utility > Edit > Network > Network Options > "Enable NAT Port Mapping Protocol"`,
		}
		if d.UPnP.Device == nil {
			guess = ", if this is an Apple AirPort, as NAT-PMP without UPnP suggests"
		}
	case strings.Contains(who, "fritz") || strings.Contains(who, "avm"):
		places = map[string]string{
			"dmz":     `the FRITZ!Box's Internet > Permit Access > Port Sharing > "Exposed Host"`,
			"forward": "the FRITZ!Box's Internet > Permit Access > Port Sharing",
			"upnp":    `the FRITZ!Box's Internet > Permit Access > Port Sharing > "Permit independent port sharing" for this device`,
		}
	case strings.Contains(who, "openwrt") || strings.Contains(who, "miniupnp"):
		places = map[string]string{
			"dmz":     "OpenWrt's LuCI > Network > Firewall > Port Forwards, a catch-all (DMZ) forward",
			"forward": "OpenWrt's LuCI > Network > Firewall > Port Forwards",
			"upnp":    "OpenWrt's LuCI > Services > UPnP IGD & PCP/NAT-PMP",
		}
	case strings.Contains(who, "pfsense") || strings.Contains(who, "opnsense"):
		places = map[string]string{
			"dmz":     "pfSense/OPNsense's Firewall > NAT > Port Forward, a catch-all forward",
			"forward": "pfSense/OPNsense's Firewall > NAT > Port Forward",
			"upnp":    "pfSense/OPNsense's Services > UPnP & NAT-PMP",
		}
	default:
		places = map[string]string{
			"dmz":     `the router's admin page, under NAT, Firewall or Advanced: "DMZ", "Default Host" or "Exposed Host"`,
			"forward": "the router's admin page, under Port Forwarding, Virtual Servers or NAT",
			"upnp":    "the router's admin page, under UPnP, NAT-PMP or Advanced",
		}
	}
	return places[setting] + guess
}

// learnedNote warns that a range learned from replies is a lower bound.
func learnedNote(o *Observations) string {
	if o.Passive == nil || !strings.HasPrefix(o.PassiveSource, SourcePASVReplies) {
		return ""
	}
	return ". The range " + o.Passive.String() + " is what the server's replies showed, so its configured range may be wider: " +
		"map exactly what is configured (Pure-FTPd PassivePortRange, vsftpd pasv_min_port/pasv_max_port, ProFTPD PassivePorts), or give it with --pasv"
}

func passiveRangeFix(o *Observations, r probe.PortRange) string {
	switch o.serverSoftware() {
	case "vsftpd":
		return fmt.Sprintf("Set pasv_min_port=%d and pasv_max_port=%d in vsftpd.conf.", r.Low, r.High)
	case "ProFTPD":
		return fmt.Sprintf("Set PassivePorts %d %d in proftpd.conf.", r.Low, r.High)
	case "Pure-FTPd":
		return fmt.Sprintf("Set the server's passive range to %s: PassivePortRange %d %d (pure-ftpd -p %d:%d; on Debian, /etc/pure-ftpd/conf/PassivePortRange).", r, r.Low, r.High, r.Low, r.High)
	}
	return fmt.Sprintf("Set the server's passive range to %s: Pure-FTPd PassivePortRange %d %d; vsftpd pasv_min_port/pasv_max_port; ProFTPD PassivePorts; pyftpdlib passive_ports.", r, r.Low, r.High)
}

func reverseDNSFix(o *Observations) string {
	switch o.serverSoftware() {
	case "vsftpd":
		return "Set reverse_lookup_enable=NO in vsftpd.conf."
	case "ProFTPD":
		return "Set UseReverseDNS off and IdentLookups off in proftpd.conf."
	case "Pure-FTPd":
		return "Turn reverse lookups off: DontResolve yes (pure-ftpd -H; on Debian, echo yes > /etc/pure-ftpd/conf/DontResolve)."
	}
	return "Turn the server's reverse DNS lookups off: Pure-FTPd DontResolve yes (-H); vsftpd reverse_lookup_enable=NO; ProFTPD UseReverseDNS off and IdentLookups off."
}

func noChrootFix(o *Observations) string {
	switch o.serverSoftware() {
	case "vsftpd":
		return "Set chroot_local_user=YES in vsftpd.conf."
	case "ProFTPD":
		return "Set DefaultRoot ~ in proftpd.conf."
	case "Pure-FTPd":
		return "Set ChrootEveryone yes (pure-ftpd -A), or give virtual users a home ending in /./ (pure-pw usermod USER -d DIR)."
	}
	return "Keep users inside their home: Pure-FTPd ChrootEveryone yes; vsftpd chroot_local_user=YES; ProFTPD DefaultRoot ~."
}

func forcedAddrFix(o *Observations, ext string) string {
	addr := ext
	if addr == "" {
		addr = "<your public address>"
	}
	switch o.serverSoftware() {
	case "vsftpd":
		return "Set pasv_address=" + addr + " in vsftpd.conf."
	case "ProFTPD":
		return "Set MasqueradeAddress " + addr + " in proftpd.conf."
	}
	return "Tell the server its public address: Pure-FTPd `ForcePassiveIP " + addr + "` (or -P " + addr + "); vsftpd pasv_address; ProFTPD MasqueradeAddress. With a dynamic address, use a DNS name where the server allows it."
}
