package nat

import (
	"context"
	"regexp"
	"strconv"

	"github.com/huin/goupnp/soap"
)

// namedServiceRE matches the WAN connection services routers describe
// outside the three natdoctor speaks through goupnp: WANPPPConnection:2
// (no such service in the UPnP spec; the Orange Livebox describes one) and
// the whole IGD in the Broadband Forum's namespace (urn:dslforum-org,
// Huawei HG531 and other TR-064 stacks). They take IGD v1's actions.
var namedServiceRE = regexp.MustCompile(`^urn:(schemas-upnp-org|dslforum-org):service:WAN(IP|PPP)Connection:[0-9]+$`)

// namedConnection speaks IGD v1's WAN connection actions in the namespace
// the device names, whatever it is: a router answers actions in the
// namespace it described.
type namedConnection struct {
	sc  *soap.SOAPClient
	urn string
}

func (c *namedConnection) call(ctx context.Context, action string, in, out any) error {
	return c.sc.PerformActionCtx(ctx, c.urn, action, in, out)
}

func ui2(n uint16) string { return strconv.FormatUint(uint64(n), 10) }

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (c *namedConnection) AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32) error {
	req := &struct {
		NewRemoteHost, NewExternalPort, NewProtocol, NewInternalPort, NewInternalClient, NewEnabled, NewPortMappingDescription, NewLeaseDuration string
	}{remoteHost, ui2(externalPort), protocol, ui2(internalPort), internalClient, boolArg(enabled), description, strconv.FormatUint(uint64(leaseDuration), 10)}
	return c.call(ctx, "AddPortMapping", req, nil)
}

func (c *namedConnection) DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error {
	req := &struct{ NewRemoteHost, NewExternalPort, NewProtocol string }{remoteHost, ui2(externalPort), protocol}
	return c.call(ctx, "DeletePortMapping", req, nil)
}

func (c *namedConnection) GetExternalIPAddressCtx(ctx context.Context) (string, error) {
	var resp struct{ NewExternalIPAddress string }
	if err := c.call(ctx, "GetExternalIPAddress", nil, &resp); err != nil {
		return "", err
	}
	return soap.UnmarshalString(resp.NewExternalIPAddress)
}

// mappingReply is an entry as GetGenericPortMappingEntry and
// GetSpecificPortMappingEntry answer it.
type mappingReply struct {
	NewRemoteHost, NewExternalPort, NewProtocol, NewInternalPort, NewInternalClient, NewEnabled, NewPortMappingDescription, NewLeaseDuration string
}

func (r *mappingReply) decode() (internalPort uint16, internalClient string, enabled bool, description string, lease uint32, err error) {
	if internalPort, err = soap.UnmarshalUi2(r.NewInternalPort); err != nil {
		return
	}
	if enabled, err = soap.UnmarshalBoolean(r.NewEnabled); err != nil {
		return
	}
	if r.NewLeaseDuration != "" {
		if lease, err = soap.UnmarshalUi4(r.NewLeaseDuration); err != nil {
			return
		}
	}
	return internalPort, r.NewInternalClient, enabled, r.NewPortMappingDescription, lease, nil
}

func (c *namedConnection) GetGenericPortMappingEntryCtx(ctx context.Context, index uint16) (remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32, err error) {
	req := &struct{ NewPortMappingIndex string }{ui2(index)}
	var resp mappingReply
	if err = c.call(ctx, "GetGenericPortMappingEntry", req, &resp); err != nil {
		return
	}
	if externalPort, err = soap.UnmarshalUi2(resp.NewExternalPort); err != nil {
		return
	}
	internalPort, internalClient, enabled, description, leaseDuration, err = resp.decode()
	return resp.NewRemoteHost, externalPort, resp.NewProtocol, internalPort, internalClient, enabled, description, leaseDuration, err
}

func (c *namedConnection) GetSpecificPortMappingEntryCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) (internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32, err error) {
	req := &struct{ NewRemoteHost, NewExternalPort, NewProtocol string }{remoteHost, ui2(externalPort), protocol}
	var resp mappingReply
	if err = c.call(ctx, "GetSpecificPortMappingEntry", req, &resp); err != nil {
		return
	}
	return resp.decode()
}

func (c *namedConnection) GetStatusInfoCtx(ctx context.Context) (status string, lastError string, uptime uint32, err error) {
	var resp struct{ NewConnectionStatus, NewLastConnectionError, NewUptime string }
	if err = c.call(ctx, "GetStatusInfo", nil, &resp); err != nil {
		return
	}
	if resp.NewUptime != "" {
		uptime, err = soap.UnmarshalUi4(resp.NewUptime)
	}
	return resp.NewConnectionStatus, resp.NewLastConnectionError, uptime, err
}
