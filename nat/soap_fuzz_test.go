package nat

import (
	"context"
	"errors"
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

// actionTransport answers each SOAP action with its own fixed body.
type actionTransport map[string]string

func (a actionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	action := strings.Join(req.Header["SOAPACTION"], "") // goupnp sets the key as is
	action = strings.Trim(action[strings.LastIndex(action, "#")+1:], `"`)
	body, ok := a[action]
	status := 200
	if !ok {
		status, body = 500, soapFault
	}
	return bodyTransport{status, []byte(body)}.RoundTrip(req)
}

// TestListRouterIgnoringRangeAndIndex: a router that answers every
// GetListOfPortMappings with the same full page and every
// GetGenericPortMappingEntry with the same entry gets an error after a
// few calls, not thousands.
func TestListRouterIgnoringRangeAndIndex(t *testing.T) {
	var page strings.Builder
	for range maxListPage {
		page.WriteString(`<p:PortMappingEntry><p:NewExternalPort>80</p:NewExternalPort><p:NewProtocol>TCP</p:NewProtocol><p:NewInternalPort>80</p:NewInternalPort><p:NewInternalClient>10.0.1.2</p:NewInternalClient><p:NewEnabled>1</p:NewEnabled></p:PortMappingEntry>`)
	}
	list := `<p:PortMappingList xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection">` + page.String() + `</p:PortMappingList>`
	reply := func(action, inner string) string {
		return `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:` + action +
			`Response xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2">` + inner + `</u:` + action + `Response></s:Body></s:Envelope>`
	}
	u := fuzzUPnP(200, nil)
	sc := u.conn.(*internetgateway2.WANIPConnection2).SOAPClient
	sc.HTTPClient.Transport = actionTransport{
		"GetListOfPortMappings": reply("GetListOfPortMappings", "<NewPortListing>"+
			strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(list)+"</NewPortListing>"),
		"GetGenericPortMappingEntry": reply("GetGenericPortMappingEntry",
			"<NewRemoteHost></NewRemoteHost><NewExternalPort>80</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>80</NewInternalPort>"+
				"<NewInternalClient>10.0.1.2</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>x</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration>"),
	}
	calls := 0
	u.calls = func() { calls++ }
	ms, err := u.List(context.Background())
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("List = %d entries, %v; want ErrMalformed", len(ms), err)
	}
	if calls > 40 {
		t.Errorf("%d SOAP calls before giving up", calls)
	}
	if len(ms) != 1 || ms[0].ExternalPort != 80 {
		t.Errorf("entries read before the error: %+v", ms)
	}
}
