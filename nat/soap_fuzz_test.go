package nat

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// bodyTransport answers every request with the same body and status.
type bodyTransport struct {
	status int
	body   []byte
}

func (b bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: b.status, Body: io.NopCloser(strings.NewReader(string(b.body))),
		ContentLength: int64(len(b.body)), Header: http.Header{}, Request: req}, nil
}

// fuzzUPnP returns a UPnP client whose router always answers body.
func fuzzUPnP(status int, body []byte) *UPnP {
	u, _ := url.Parse("http://127.0.0.1:1/ctl/IPConn")
	sc := soap.NewSOAPClient(*u)
	sc.HTTPClient = http.Client{Transport: &cappedTransport{base: bodyTransport{status, body}, max: maxHTTPBody}, Timeout: time.Second}
	return &UPnP{conn: &internetgateway2.WANIPConnection2{ServiceClient: goupnp.ServiceClient{SOAPClient: sc}}}
}

const soapFault = `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`

func TestSOAPFaultIsTyped(t *testing.T) {
	u := fuzzUPnP(500, []byte(soapFault))
	_, err := u.Add(context.Background(), Request{Protocol: TCP, ExternalPort: 21, InternalPort: 21})
	if UPnPCode(err) != UPnPConflictInMappingEntry {
		t.Errorf("fault: %v", err)
	}
}

// FuzzSOAPResponse feeds arbitrary SOAP replies to every call natdoctor
// makes: each must return, with a value or an error, never panic.
func FuzzSOAPResponse(f *testing.F) {
	f.Add(500, []byte(soapFault))
	f.Add(200, []byte(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewExternalIPAddress>11.0.0.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`))
	f.Add(200, []byte(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetListOfPortMappingsResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewPortListing>`+
		strings.ReplaceAll(strings.ReplaceAll(miniupnpdList, "<", "&lt;"), ">", "&gt;")+`</NewPortListing></u:GetListOfPortMappingsResponse></s:Body></s:Envelope>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			status = 200
		}
		u := fuzzUPnP(status, body)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = u.ExternalAddr(ctx)
		_, _, _ = u.Status(ctx)
		_, _ = u.Get(ctx, TCP, 21)
		_, _ = u.Add(ctx, Request{Protocol: TCP, ExternalPort: 21, InternalPort: 21})
		_ = u.Delete(ctx, TCP, 21, 21)
		if ms, err := u.List(ctx); err == nil && len(ms) > maxListEntries {
			t.Fatalf("%d entries", len(ms))
		}
	})
}
