package nat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/huin/goupnp/soap"
)

// Named UPnP error codes natdoctor acts on.
const (
	UPnPInvalidArgs                  = 402
	UPnPActionNotAuthorized          = 606
	UPnPSpecifiedArrayIndexInvalid   = 713
	UPnPNoSuchEntryInArray           = 714
	UPnPConflictInMappingEntry       = 718
	UPnPSamePortValuesRequired       = 724
	UPnPOnlyPermanentLeasesSupported = 725
	UPnPConflictWithOtherMechanisms  = 729
	UPnPPortMappingNotFound          = 730
)

// UPnP error codes (UPnP IGD WANIPConnection v2, section 2.4).
var upnpErrorNames = map[int]string{
	401: "InvalidAction",
	402: "InvalidArgs",
	501: "ActionFailed",
	606: "ActionNotAuthorized",
	713: "SpecifiedArrayIndexInvalid",
	714: "NoSuchEntryInArray",
	715: "WildCardNotPermittedInSrcIP",
	716: "WildCardNotPermittedInExtPort",
	718: "ConflictInMappingEntry",
	724: "SamePortValuesRequired",
	725: "OnlyPermanentLeasesSupported",
	726: "RemoteHostOnlySupportsWildcard",
	727: "ExternalPortOnlySupportsWildcard",
	728: "NoPortMapsAvailable",
	729: "ConflictWithOtherMechanisms",
	730: "PortMappingNotFound",
	731: "ReadOnly",
	732: "WildCardNotPermittedInIntPort",
	733: "InconsistentParameters",
}

// UPnPError is a SOAP fault from the router, with its UPnP error code.
type UPnPError struct {
	Code        int
	Description string
	Action      string
	// Unowned: the router answered 718 (ConflictInMappingEntry) for a
	// port its table showed free just before, so no other host holds it:
	// the router refuses the port by policy, as others say with 606.
	Unowned bool
}

// Name returns the code's name in the IGD specification.
func (e *UPnPError) Name() string {
	if n, ok := upnpErrorNames[e.Code]; ok {
		return n
	}
	return "UPnPError" + strconv.Itoa(e.Code)
}

func (e *UPnPError) Error() string {
	msg := fmt.Sprintf("UPnP %s: error %d %s", e.Action, e.Code, e.Name())
	if e.Description != "" && e.Description != e.Name() {
		msg += ": " + e.Description
	}
	switch e.Code {
	case UPnPActionNotAuthorized:
		msg += " (the router refuses this by policy: ports below 1024, or a mapping for another address in secure mode)"
	case UPnPConflictInMappingEntry:
		if e.Unowned {
			msg += " (but no mapping of the port was there: the router refuses it by policy, as others answer 606)"
		} else {
			msg += " (the port is already mapped to another host)"
		}
	case UPnPConflictWithOtherMechanisms:
		msg += " (the port is used by a static forward or the router's own services)"
	case 501:
		if e.Action == "AddPortMapping" {
			msg += " (the router gives no reason; a full mapping table is the usual one: natdoctor list shows what other hosts hold)"
		}
	case 728:
		msg += " (the router's mapping table is full: natdoctor list shows what other hosts hold)"
	}
	return msg
}

// UPnPCode returns the UPnP error code carried by err, or 0.
func UPnPCode(err error) int {
	var ue *UPnPError
	if errors.As(err, &ue) {
		return ue.Code
	}
	return 0
}

// soapError converts goupnp's errors into typed ones.
func soapError(action string, err error) error {
	if err == nil {
		return nil
	}
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) {
		return &UPnPError{Code: fault.Detail.UPnPError.Errorcode, Description: fault.Detail.UPnPError.ErrorDescription, Action: action}
	}
	if strings.Contains(err.Error(), ErrTooLarge.Error()) {
		return fmt.Errorf("UPnP %s: %w", action, ErrTooLarge)
	}
	// goupnp flattens the HTTP error (%v), and net/http says "context
	// deadline exceeded" rather than "Client.Timeout" when its own timer
	// loses the race with the request's deadline: match the text too.
	if msg := strings.ToLower(err.Error()); errors.Is(err, context.DeadlineExceeded) || isTimeout(err) ||
		strings.Contains(msg, "timeout") || strings.Contains(msg, context.DeadlineExceeded.Error()) {
		return fmt.Errorf("UPnP %s: %w: %v", action, ErrNoResponse, err)
	}
	return fmt.Errorf("UPnP %s: %w", action, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
