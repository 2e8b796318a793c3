package nat

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultConcurrency bounds the requests in flight to one router. Home
// routers handle mapping requests one at a time (miniupnpd is single
// threaded): two in flight overlap the network with the router's work,
// more only queue up and time out.
const DefaultConcurrency = 2

// Roll-back bounds: the clean-up after a failed add runs even when the
// command's own context was cancelled, and waits for a busy router.
const (
	rollbackTimeout = 45 * time.Second
	rollbackPerStep = 300 * time.Millisecond
	// rollbackRetryMax caps the back-off between tries of a roll-back
	// request the router did not answer: a router that went quiet (busy,
	// or miniupnpd after a PCP policy refusal) is asked again until it
	// answers or rollbackTimeout runs out.
	rollbackRetryMax = 4 * time.Second
)

// Action is what a plan does with one mapping.
type Action string

// Plan actions.
const (
	ActionAdd      Action = "add"      // not mapped: create it
	ActionRenew    Action = "renew"    // mapped to the same host and port: refresh its lease
	ActionReplace  Action = "replace"  // mapped to another host: take it (--force)
	ActionConflict Action = "conflict" // mapped to another host: left alone
	ActionRemove   Action = "remove"   // mapped to this host: remove it
	ActionAbsent   Action = "absent"   // not mapped: nothing to remove
	ActionSkip     Action = "skip"     // another host's mapping: left alone
)

// Step is one mapping of a plan and, once applied, its outcome.
type Step struct {
	Request  Request
	Action   Action
	Existing *Mapping // what the router had; nil when absent or unknown
	Known    bool     // whether the router could tell what it had (UPnP)
	Granted  *Mapping // what the router granted (add) once applied
	Err      error    // why this step failed once applied

	displaced bool // the other host's mapping was deleted (replace)
}

// Key names a mapping by protocol and external port.
type Key struct {
	Protocol Protocol
	Port     uint16
}

func (s Step) key() Key { return Key{s.Request.Protocol, s.Request.ExternalPort} }

// Requests expands port pairs for each protocol into mapping requests.
// Descriptions default to "natdoctor <port>/<proto>".
func Requests(pairs []PortPair, protos []Protocol, host netip.Addr, lease time.Duration, desc string) []Request {
	var out []Request
	for _, proto := range protos {
		for _, p := range pairs {
			d := desc
			if d == "" {
				d = fmt.Sprintf("natdoctor %d/%s", p.External, strings.ToLower(string(proto)))
			}
			out = append(out, Request{Protocol: proto, ExternalPort: p.External, InternalAddr: host,
				InternalPort: p.Internal, Description: d, Lease: lease})
		}
	}
	return out
}

// Mapper adds and removes sets of mappings as one operation.
type Mapper struct {
	Router      Router
	Lister      Lister // nil when the protocol cannot list (NAT-PMP, PCP)
	Concurrency int
	Force       bool // take or remove mappings of other hosts
	// Verify lists the mappings again after an add (one paged listing) and
	// treats a mapping the router accepted but does not hold as a failure.
	Verify bool
}

func (m *Mapper) concurrency() int {
	if m.Concurrency > 0 {
		return m.Concurrency
	}
	return DefaultConcurrency
}

// each runs f for every index in parallel, at most m.concurrency() at once,
// and stops starting new work when ctx ends or stop is set. Work in flight
// is never abandoned: its outcome on the router must be known.
func (m *Mapper) each(ctx context.Context, stop *atomic.Bool, n int, f func(i int)) {
	sem := make(chan struct{}, m.concurrency())
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		if stop != nil && stop.Load() {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// existing returns what the router holds for the requested keys, and
// whether it could tell. It looks up exactly those ports (Lookup: one
// bulk page on IGD v2, one lookup per port otherwise), never
// the whole table: a busy router's table holds every device's mappings,
// and an index walk skips entries when the table changes under it.
func (m *Mapper) existing(ctx context.Context, reqs []Request) (map[Key]Mapping, bool, error) {
	if m.Lister == nil {
		return nil, false, nil
	}
	byProto := map[Protocol][]uint16{}
	for _, r := range reqs {
		byProto[r.Protocol] = append(byProto[r.Protocol], r.ExternalPort)
	}
	have := map[Key]Mapping{}
	for _, proto := range []Protocol{TCP, UDP} {
		if len(byProto[proto]) == 0 {
			continue
		}
		ms, err := m.Lister.Lookup(ctx, proto, byProto[proto])
		if err != nil {
			return nil, false, fmt.Errorf("cannot tell what the router already maps: %w", err)
		}
		for _, mp := range ms {
			have[Key{mp.Protocol, mp.ExternalPort}] = mp
		}
	}
	return have, true, ctx.Err()
}

// PlanAdd decides, per request, whether to add, renew, replace or leave a
// conflict alone. It changes nothing on the router.
func (m *Mapper) PlanAdd(ctx context.Context, reqs []Request) ([]Step, error) {
	have, known, err := m.existing(ctx, reqs)
	if err != nil {
		return nil, err
	}
	steps := make([]Step, len(reqs))
	for i, r := range reqs {
		s := Step{Request: r, Action: ActionAdd, Known: known}
		if mp, ok := have[s.key()]; ok {
			mp := mp
			s.Existing = &mp
			switch {
			case mp.InternalAddr == r.InternalAddr && mp.InternalPort == r.InternalPort:
				s.Action = ActionRenew
			case m.Force:
				s.Action = ActionReplace
			default:
				s.Action = ActionConflict
			}
		}
		steps[i] = s
	}
	return steps, nil
}

// ConflictError lists ports already mapped elsewhere.
type ConflictError struct{ Steps []Step }

func (e *ConflictError) Error() string {
	var parts []string
	for _, s := range e.Steps {
		parts = append(parts, fmt.Sprintf("%s %d is mapped to %s:%d (%q)", s.Request.Protocol, s.Request.ExternalPort,
			s.Existing.InternalAddr, s.Existing.InternalPort, s.Existing.Description))
	}
	return fmt.Sprintf("%s; nothing was changed (use --force to take these ports)", strings.Join(parts, "; "))
}

// AddError is a failed all-or-nothing add.
type AddError struct {
	Failed     []Step // the steps that failed, with their errors
	RolledBack int    // mappings of this call removed or restored again
	Left       []Step // mappings the roll-back could not undo
}

func (e *AddError) Error() string {
	var b strings.Builder
	for i, s := range e.Failed {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %d: %v", s.Request.Protocol, s.Request.ExternalPort, s.Err)
	}
	if len(e.Left) == 0 {
		fmt.Fprintf(&b, "; the %d mappings this call made were undone, the router is as it was", e.RolledBack)
	} else {
		var left []string
		for _, s := range e.Left {
			left = append(left, fmt.Sprintf("%s %d", s.Request.Protocol, s.Request.ExternalPort))
		}
		fmt.Fprintf(&b, "; could not undo %s: remove them with `natdoctor remove`", strings.Join(left, ", "))
	}
	return b.String()
}

// Unwrap returns the failures' errors.
func (e *AddError) Unwrap() []error {
	var errs []error
	for _, s := range e.Failed {
		errs = append(errs, s.Err)
	}
	return errs
}

// Add applies a plan all or nothing: when any step fails, the others stop,
// what this call created is removed and what it replaced is restored.
// Renewed mappings stay (they were there before). Conflicts fail the whole
// plan before anything is sent.
func (m *Mapper) Add(ctx context.Context, steps []Step) error {
	var conflicts []Step
	for _, s := range steps {
		if s.Action == ActionConflict {
			conflicts = append(conflicts, s)
		}
	}
	if len(conflicts) > 0 {
		return &ConflictError{Steps: conflicts}
	}
	var mu sync.Mutex
	var failed atomic.Bool
	apply := func(i int) {
		s := &steps[i]
		if s.Action == ActionReplace {
			// A router refuses to overwrite another host's mapping (718):
			// delete it first; a roll-back puts it back.
			err := m.Router.Delete(ctx, s.Request.Protocol, s.Request.ExternalPort, s.Existing.InternalPort)
			if err != nil && !errors.Is(err, ErrNoSuchMapping) {
				mu.Lock()
				s.Err = err
				failed.Store(true)
				mu.Unlock()
				return
			}
			s.displaced = true
		}
		g, err := m.Router.Add(ctx, s.Request)
		mu.Lock()
		defer mu.Unlock()
		if g.ExternalPort != 0 {
			s.Granted = &g
		}
		if err != nil {
			var ue *UPnPError
			if s.Action == ActionAdd && s.Known && errors.As(err, &ue) && ue.Code == UPnPConflictInMappingEntry {
				ue.Unowned = true // the lookup just now found the port free
			}
			s.Err = err
			failed.Store(true)
		}
	}
	// Ports below 1024 go first and alone: routers refuse them by policy
	// more than any other (OpenWrt's default UPnP rules allow 1024-65535),
	// and a refusal before anything else was made leaves nothing to undo
	// (miniupnpd 2.3.1 even stops answering PCP for a while after one).
	for _, batch := range privilegedFirst(steps) {
		if failed.Load() {
			break
		}
		m.each(ctx, &failed, len(batch), func(j int) { apply(batch[j]) })
	}
	if !failed.Load() && ctx.Err() == nil {
		if err := m.verify(ctx, steps); err == nil {
			return nil
		}
	}
	return m.rollback(ctx, steps)
}

// privilegedFirst returns the indices of steps in two batches: mappings
// with a port below 1024 on either side, then the others.
func privilegedFirst(steps []Step) [][]int {
	var low, high []int
	for i, s := range steps {
		if min(s.Request.ExternalPort, s.Request.InternalPort) < 1024 {
			low = append(low, i)
		} else {
			high = append(high, i)
		}
	}
	return [][]int{low, high}
}

// verify checks that the router holds every mapping it accepted. A step it
// does not hold gets an error.
func (m *Mapper) verify(ctx context.Context, steps []Step) error {
	if !m.Verify || m.Lister == nil {
		return nil
	}
	var reqs []Request
	for _, s := range steps {
		reqs = append(reqs, s.Request)
	}
	have, known, err := m.existing(ctx, reqs)
	if err != nil || !known {
		return nil // cannot tell: what the router said stands
	}
	var bad error
	for i := range steps {
		s := &steps[i]
		if s.Granted == nil {
			continue
		}
		got, ok := have[s.key()]
		if !ok {
			// Some routers hold mappings their listing never shows:
			// ask for this one by name before calling it lost.
			if m1, err := m.Lister.Get(ctx, s.Request.Protocol, s.Request.ExternalPort); err == nil {
				got, ok = m1, true
			}
		}
		if !ok || got.InternalAddr != s.Request.InternalAddr || got.InternalPort != s.Request.InternalPort {
			s.Err = fmt.Errorf("the router accepted the mapping but does not hold it (%w)", ErrNoSuchMapping)
			bad = s.Err
			continue
		}
		if ignoredLease(s.Granted.Lease, got.Lease) {
			// Some routers accept any lease and hold the mapping their
			// own way, permanent most often: what they hold is what
			// stands, and outlives natdoctor.
			g := *s.Granted
			g.Lease = got.Lease
			s.Granted = &g
		}
	}
	return bad
}

// ignoredLease reports whether a router that granted a lease holds the
// mapping with another: permanently instead of for a while, or for longer
// than granted (a listed lease only counts down).
func ignoredLease(granted, held time.Duration) bool {
	if granted == 0 {
		return false
	}
	return held == 0 || held > granted+time.Minute
}

func (m *Mapper) rollback(ctx context.Context, steps []Step) error {
	rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout+time.Duration(len(steps))*rollbackPerStep)
	defer cancel()
	ae := &AddError{}
	for _, s := range steps {
		if s.Err != nil && !errors.Is(s.Err, context.Canceled) {
			ae.Failed = append(ae.Failed, s)
		}
	}
	if len(ae.Failed) == 0 && ctx.Err() != nil {
		ae.Failed = append(ae.Failed, Step{Err: ctx.Err()})
	}
	var mu sync.Mutex
	m.each(rbCtx, nil, len(steps), func(i int) {
		s := steps[i]
		if s.Granted == nil && !s.displaced && !(s.Action == ActionAdd && uncertain(s.Err)) {
			return
		}
		var err error
		switch {
		case s.Action == ActionReplace:
			if s.Granted != nil {
				err = m.Router.Delete(rbCtx, s.Granted.Protocol, s.Granted.ExternalPort, s.Granted.InternalPort)
			}
			if err == nil || errors.Is(err, ErrNoSuchMapping) {
				_, err = m.Router.Add(rbCtx, Request{Protocol: s.Existing.Protocol, ExternalPort: s.Existing.ExternalPort,
					InternalAddr: s.Existing.InternalAddr, InternalPort: s.Existing.InternalPort,
					Description: s.Existing.Description, Lease: s.Existing.Lease, Disabled: !s.Existing.Enabled})
			}
		case s.Granted == nil:
			// No answer: the router may have made it. It was not there
			// before, so removing it is safe.
			err = m.deleteWhenAnswering(rbCtx, s.Request.Protocol, s.Request.ExternalPort, s.Request.InternalPort)
			if errors.Is(err, ErrNoSuchMapping) {
				return
			}
		case s.Action == ActionAdd || s.Granted.ExternalPort != s.Request.ExternalPort:
			err = m.deleteWhenAnswering(rbCtx, s.Granted.Protocol, s.Granted.ExternalPort, s.Granted.InternalPort)
			if errors.Is(err, ErrNoSuchMapping) {
				err = nil
			}
		default:
			return // renewed: it was there before
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			s.Err = err
			ae.Left = append(ae.Left, s)
		} else {
			ae.RolledBack++
		}
	})
	return ae
}

// deleteWhenAnswering deletes a mapping, asking again with back-off while
// the router does not answer, until it does or ctx ends.
func (m *Mapper) deleteWhenAnswering(ctx context.Context, proto Protocol, external, internal uint16) error {
	wait := 250 * time.Millisecond
	for {
		err := m.Router.Delete(ctx, proto, external, internal)
		if !uncertain(err) || errors.Is(err, ErrNoSuchMapping) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, rollbackRetryMax)
	}
}

// uncertain reports whether a failed request may still have taken effect:
// the router did not say no, the answer was lost.
func uncertain(err error) bool {
	if err == nil {
		return false
	}
	var ue *UPnPError
	var pe *PMPError
	var ce *PCPError
	return !errors.As(err, &ue) && !errors.As(err, &pe) && !errors.As(err, &ce)
}

// PlanRemove decides, per request, whether to remove a mapping, leave
// another host's mapping alone, or note that nothing is there.
func (m *Mapper) PlanRemove(ctx context.Context, reqs []Request) ([]Step, error) {
	have, known, err := m.existing(ctx, reqs)
	if err != nil {
		return nil, err
	}
	steps := make([]Step, len(reqs))
	for i, r := range reqs {
		s := Step{Request: r, Action: ActionRemove, Known: known}
		if known {
			mp, ok := have[s.key()]
			switch {
			case !ok:
				s.Action = ActionAbsent
			case mp.InternalAddr != r.InternalAddr && !m.Force:
				s.Action = ActionSkip
			}
			if ok {
				mp := mp
				s.Existing = &mp
			}
		}
		steps[i] = s
	}
	return steps, nil
}

// Remove applies a removal plan. A mapping already gone is not an error.
// Every step is tried; the errors are joined.
func (m *Mapper) Remove(ctx context.Context, steps []Step) error {
	done := m.removeRanges(ctx, steps)
	var mu sync.Mutex
	var errs []error
	m.each(ctx, nil, len(steps), func(i int) {
		s := &steps[i]
		if s.Action != ActionRemove || done[i] {
			return
		}
		intPort := s.Request.InternalPort
		if s.Existing != nil {
			intPort = s.Existing.InternalPort
		}
		err := m.Router.Delete(ctx, s.Request.Protocol, s.Request.ExternalPort, intPort)
		if errors.Is(err, ErrNoSuchMapping) {
			s.Action, err = ActionAbsent, nil
		}
		if err != nil {
			mu.Lock()
			s.Err = err
			errs = append(errs, fmt.Errorf("%s %d: %w", s.Request.Protocol, s.Request.ExternalPort, err))
			mu.Unlock()
		}
	})
	if len(errs) == 0 {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// rangeDeleter is a router that removes a run of ports in one request.
type rangeDeleter interface {
	DeleteRange(ctx context.Context, proto Protocol, lo, hi uint16) error
}

// minRangeDelete is the shortest run worth one DeletePortMappingRange.
const minRangeDelete = 2

// removeRanges removes, one request per run, each run of consecutive ports
// that the plan saw mapped to the requested host, and returns the steps it
// removed. Only such runs are safe: a router may remove every mapping in
// the range whoever owns it (miniupnpd does), and a run whose every port
// holds this host's mapping leaves no port for another host's. A run that
// fails is left to the per-port removal.
func (m *Mapper) removeRanges(ctx context.Context, steps []Step) map[int]bool {
	rd, ok := m.Router.(rangeDeleter)
	if !ok {
		return nil
	}
	ours := func(s Step) bool {
		return s.Action == ActionRemove && s.Known && s.Existing != nil &&
			s.Existing.ExternalPort == s.Request.ExternalPort && s.Existing.InternalAddr == s.Request.InternalAddr
	}
	var idx []int
	for i, s := range steps {
		if ours(s) {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		sa, sb := steps[a].Request, steps[b].Request
		if c := strings.Compare(string(sa.Protocol), string(sb.Protocol)); c != 0 {
			return c
		}
		return int(sa.ExternalPort) - int(sb.ExternalPort)
	})
	done := map[int]bool{}
	for start := 0; start < len(idx); {
		end := start + 1
		for end < len(idx) && steps[idx[end]].Request.Protocol == steps[idx[start]].Request.Protocol &&
			steps[idx[end]].Request.ExternalPort == steps[idx[end-1]].Request.ExternalPort+1 {
			end++
		}
		run := idx[start:end]
		start = end
		if len(run) < minRangeDelete || ctx.Err() != nil {
			continue
		}
		first, last := steps[run[0]].Request, steps[run[len(run)-1]].Request
		if err := rd.DeleteRange(ctx, first.Protocol, first.ExternalPort, last.ExternalPort); err != nil {
			continue
		}
		for _, i := range run {
			done[i] = true
		}
	}
	return done
}
