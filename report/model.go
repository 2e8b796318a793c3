package report

import (
	"encoding/json"
	"net/netip"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// SourcePASVReplies starts Observations.PassiveSource when the passive
// range was learned from the server's replies, not given or configured.
const SourcePASVReplies = "learned"

// Schema names the JSON document's version.
const Schema = "natdoctor.diagnose/v1"

// Severity ranks a finding.
type Severity string

// Severities, worst first.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
	SevInfo    Severity = "info"
	SevOK      Severity = "ok"
)

func (s Severity) rank() int {
	return map[Severity]int{SevError: 0, SevWarning: 1, SevInfo: 2, SevOK: 3}[s]
}

// Finding is one thing diagnose found.
type Finding struct {
	Code        string         `json:"code"`
	Severity    Severity       `json:"severity"`
	Summary     string         `json:"summary"`
	Evidence    map[string]any `json:"evidence,omitempty"`
	Explanation string         `json:"explanation,omitempty"`
	Fix         string         `json:"fix,omitempty"`
	// CausedBy are findings of this report that cause this one (the
	// catalogue's After): fix them first.
	CausedBy []string `json:"caused_by,omitempty"`
	// root: nothing else can work until this is fixed (a server that does
	// not answer on the LAN); it is listed first and caused by nothing.
	root bool
}

// Hop is one step of the path a connection from outside takes.
type Hop struct {
	Name   string        `json:"name"`
	Status check.Outcome `json:"status"` // ok, failed, skipped
	Detail string        `json:"detail,omitempty"`
}

// Observations are what nat and probe saw; report turns them into findings.
type Observations struct {
	Discovery    *nat.Discovery `json:"discovery,omitempty"`
	DiscoveryErr string         `json:"discovery_error,omitempty"`
	// DiscoveryError is DiscoveryErr typed (nat.ErrNoGateway, ...).
	DiscoveryError error      `json:"-"`
	Server         netip.Addr `json:"server"`
	FTPPort        uint16     `json:"ftp_port"`
	// PublicPort is the router's external port for the control
	// connection, when it is not FTPPort (a router that refuses ports
	// below 1024: 2121 -> 21).
	PublicPort    uint16           `json:"public_port,omitempty"`
	Passive       *probe.PortRange `json:"passive_range,omitempty"`
	PassiveSource string           `json:"passive_range_source,omitempty"`
	Config        *probe.FTPConfig `json:"ftp_config,omitempty"`
	Mappings      []nat.Mapping    `json:"mappings,omitempty"`
	MappingsKnown bool             `json:"mappings_known"`
	MappingsErr   string           `json:"mappings_error,omitempty"`
	// MappingsError is MappingsErr typed: a *nat.UPnPError when the router
	// refused, nat.ErrNoResponse when it did not answer.
	MappingsError error `json:"-"`
	// MappingsNotAsked are needed ports the router was not asked about,
	// and why: Mappings says nothing of them.
	MappingsNotAsked *NotAsked            `json:"mappings_not_asked,omitempty"`
	Inside           *probe.FTPResult     `json:"inside,omitempty"`
	Outside          *probe.OutsideResult `json:"outside,omitempty"`
	Reflector        string               `json:"reflector,omitempty"`
	Hairpin          *probe.FTPResult     `json:"hairpin,omitempty"`
	HairpinStatus    probe.Status         `json:"hairpin_status,omitempty"`
	Credentials      bool                 `json:"credentials_given"`
	// IPv6 are the checks over IPv6 (diagnose --ipv6).
	IPv6    *IPv6Observations `json:"ipv6,omitempty"`
	Elapsed time.Duration     `json:"elapsed_ns"`
}

// MarshalJSON writes the observations as natdoctor.diagnose/v1 has them:
// the LAN walk, run and kept once, also appears as outside.inside, where
// v1 documents put it first.
func (o *Observations) MarshalJSON() ([]byte, error) {
	type plain Observations
	v := struct {
		*plain
		Outside any `json:"outside,omitempty"`
	}{plain: (*plain)(o)}
	if o.Outside != nil {
		v.Outside = struct {
			*probe.OutsideResult
			Inside *probe.FTPResult `json:"inside"`
		}{o.Outside, o.Inside}
	}
	return json.Marshal(v)
}

// DiscoveryFailed records why the router could not be asked.
func (o *Observations) DiscoveryFailed(err error) {
	o.DiscoveryErr, o.DiscoveryError = err.Error(), err
}

// MappingsFailed records why the router's mappings are not known.
func (o *Observations) MappingsFailed(err error) {
	o.Mappings, o.MappingsKnown, o.MappingsErr, o.MappingsError = nil, false, err.Error(), err
}

// NotAsked names ports a check left out on purpose, and why.
type NotAsked struct {
	Ports []uint16 `json:"ports"`
	Why   string   `json:"why"`
}

// Unchecked is a check that did not run.
type Unchecked struct {
	Check string `json:"check"` // router, mappings, passive-mappings, lan-ftp, login, outside, outside-control-port, outside-passive-ports, outside-default-host, server-config
	Why   string `json:"why"`
}

// Report is the outcome of diagnose.
type Report struct {
	Schema  string `json:"schema"`
	Verdict string `json:"verdict"`
	Healthy bool   `json:"healthy"`
	// Families is the verdict per address family, when IPv6 was checked.
	Families   []FamilyVerdict `json:"families,omitempty"`
	Findings   []Finding       `json:"findings"`
	Path       []Hop           `json:"path"`
	NotChecked []string        `json:"not_checked"`
	// Unchecked holds the same items typed: which check, and why.
	Unchecked    []Unchecked   `json:"not_checked_items"`
	Observations *Observations `json:"observations"`
}

// HasErrors reports whether any finding is an error.
func (r *Report) HasErrors() bool {
	for _, f := range r.Findings {
		if f.Severity == SevError {
			return true
		}
	}
	return false
}

// thisHostIsDefault reports whether the canary proved this host to be the
// router's default host.
func (o *Observations) thisHostIsDefault() bool {
	return o.Outside != nil && o.Outside.Canary != nil && o.Outside.Canary.ThisHostIsDefault == check.Yes
}

// NeededPorts returns the ports the server needs mapped: the control port
// (21 or --ftp-port) and the passive range.
func (o *Observations) NeededPorts() []uint16 {
	ports := []uint16{o.ControlPort()}
	if r := o.servedPassive(); r != nil {
		for p := int(r.Low); p <= int(r.High); p++ {
			ports = append(ports, uint16(p))
		}
	}
	return ports
}

// servedPassive is the part of the passive range the server hands out.
// ProFTPD never hands out the top port of its PassivePorts range (the
// lab's ProFTPD 1.3.8: 42000-42009 in 200 replies for PassivePorts 42000
// 42010), so a client never needs that one mapped.
func (o *Observations) servedPassive() *probe.PortRange {
	r := o.Passive
	if r == nil || o.serverSoftware() != "ProFTPD" || r.High <= r.Low || strings.HasPrefix(o.PassiveSource, SourcePASVReplies) {
		return r
	}
	return &probe.PortRange{Low: r.Low, High: r.High - 1}
}

// ControlPort is the port clients connect to from outside.
func (o *Observations) ControlPort() uint16 {
	if o.PublicPort != 0 {
		return o.PublicPort
	}
	return o.FTPPort
}

// serverSoftware names the FTP server: from its configuration, else from
// its greeting.
func (o *Observations) serverSoftware() string {
	if o.Config != nil {
		return o.Config.Server
	}
	if o.Inside != nil {
		return o.Inside.Software
	}
	return ""
}
