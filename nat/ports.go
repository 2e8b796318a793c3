package nat

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Bounds on port specifications.
const (
	MaxRangePorts = 2048 // ports in one range
	MaxSpecPorts  = 4096 // ports in one command
)

// PortPair is an external port and the internal port it maps to.
type PortPair struct {
	External, Internal uint16
}

// SpecError is a bad port specification, naming the bad part.
type SpecError struct {
	Part string
	Why  string
}

func (e *SpecError) Error() string { return fmt.Sprintf("bad port %q: %s", e.Part, e.Why) }

// ParsePorts parses port specifications: "21", "42000-42010", "8021:21"
// (external:internal), "8000-8010:9000-9010", comma lists and several
// arguments. Duplicates are merged; the order is kept.
func ParsePorts(args []string) ([]PortPair, error) {
	var out []PortPair
	seen := map[uint16]uint16{}
	for _, arg := range args {
		for _, part := range strings.Split(arg, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				return nil, &SpecError{Part: arg, Why: "empty item in the list"}
			}
			pairs, err := parsePortPart(part)
			if err != nil {
				return nil, err
			}
			for _, p := range pairs {
				if in, ok := seen[p.External]; ok {
					if in != p.Internal {
						return nil, &SpecError{Part: part, Why: fmt.Sprintf("external port %d is given twice with different internal ports (%d and %d)", p.External, in, p.Internal)}
					}
					continue
				}
				seen[p.External] = p.Internal
				out = append(out, p)
				if len(out) > MaxSpecPorts {
					return nil, &SpecError{Part: part, Why: fmt.Sprintf("more than %d ports in one command", MaxSpecPorts)}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, &SpecError{Part: strings.Join(args, " "), Why: "no ports given"}
	}
	return out, nil
}

func parsePortPart(part string) ([]PortPair, error) {
	extSpec, intSpec, hasInt := strings.Cut(part, ":")
	eLo, eHi, err := parseRange(part, extSpec)
	if err != nil {
		return nil, err
	}
	iLo, iHi := eLo, eHi
	if hasInt {
		if iLo, iHi, err = parseRange(part, intSpec); err != nil {
			return nil, err
		}
		if iHi-iLo != eHi-eLo {
			return nil, &SpecError{Part: part, Why: "the external and internal ranges differ in length"}
		}
	}
	pairs := make([]PortPair, 0, eHi-eLo+1)
	for i := 0; i <= eHi-eLo; i++ {
		pairs = append(pairs, PortPair{External: uint16(eLo + i), Internal: uint16(iLo + i)})
	}
	return pairs, nil
}

func parseRange(part, s string) (lo, hi int, err error) {
	loS, hiS, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(part, loS); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = parsePort(part, hiS); err != nil {
			return 0, 0, err
		}
	}
	switch {
	case hi < lo:
		return 0, 0, &SpecError{Part: part, Why: fmt.Sprintf("range %d-%d is reversed", lo, hi)}
	case hi-lo+1 > MaxRangePorts:
		return 0, 0, &SpecError{Part: part, Why: fmt.Sprintf("range of %d ports is larger than %d", hi-lo+1, MaxRangePorts)}
	}
	return lo, hi, nil
}

func parsePort(part, s string) (int, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		return 0, &SpecError{Part: part, Why: fmt.Sprintf("%q is not a port number", s)}
	case n < 1 || n > 65535:
		return 0, &SpecError{Part: part, Why: fmt.Sprintf("port %d is outside 1-65535", n)}
	}
	return n, nil
}

// CompressPorts writes ports as ranges: "21, 42000-42004, 42007".
func CompressPorts(ports []uint16) string {
	ps := slices.Clone(ports)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(int(ps[i])))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ps[i], ps[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
