package nat

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Keeper defaults.
const (
	DefaultCheckInterval = 30 * time.Second // how often the router is checked
	// DefaultVerifyEvery is how many checks pass between lookups of the
	// mappings themselves (UPnP; 15 minutes at the default interval): a
	// restart shows in the uptime, a mapping deleted by hand only in the
	// table.
	DefaultVerifyEvery = 30
	keepMinRetry       = time.Second
	keepMaxRetry       = 30 * time.Second
	keepCleanupTimeout = 10 * time.Second
)

// KeepEvent is one thing a Keeper did or saw.
type KeepEvent struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"event"` // added, renewed, restored, router-restarted, error, removed, left
	Detail string    `json:"detail"`
}

// Keeper keeps a set of mappings alive at the lowest cost to the router:
// it adds them, renews them at about half the granted lease (one request
// per mapping), and between renewals checks the router with one request:
// on IGD v2 one bulk page of the mappings themselves, else the NAT-PMP/PCP
// epoch or the UPnP uptime (a router that restarted gets the mappings
// again), with a lookup of the mappings every VerifyEvery checks on UPnP
// IGD v1, and at every check when it gives no uptime. It
// survives a router that is down for a while without spinning, and on exit
// removes what it added.
type Keeper struct {
	// Open finds the router and returns a mapper for it; it is called
	// again after failures, as the router may come back elsewhere.
	Open     func(ctx context.Context) (*Mapper, error)
	Requests []Request
	// Leave keeps the mappings on exit instead of removing them.
	Leave bool
	// CheckInterval bounds the time between checks of the router.
	CheckInterval time.Duration
	// VerifyEvery is the number of checks between lookups of the
	// mappings (UPnP); 0 is DefaultVerifyEvery.
	VerifyEvery int
	// Log receives every event.
	Log func(KeepEvent)
	// Lock, when set, is held around each round of changes (LockMappings).
	Lock func(ctx context.Context) (unlock func(), err error)
}

// lock takes k.Lock, if any.
func (k *Keeper) lock(ctx context.Context) (func(), error) {
	if k.Lock == nil {
		return func() {}, nil
	}
	return k.Lock(ctx)
}

func (k *Keeper) log(kind, format string, args ...any) {
	if k.Log != nil {
		k.Log(KeepEvent{Time: time.Now(), Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
}

// epochRestarted applies RFC 6886 section 3.6: a router whose epoch grew
// less than 7/8 of the time that passed, less 2 s, has restarted.
func epochRestarted(prevEpoch uint32, prevAt time.Time, epoch uint32, at time.Time) bool {
	elapsed := at.Sub(prevAt).Seconds()
	return float64(epoch)+2 < float64(prevEpoch)+elapsed*7/8
}

// keepState is what a Keeper knows between rounds.
type keepState struct {
	check    time.Duration
	mapper   *Mapper
	created  map[Key]bool
	renewAt  time.Time // zero: permanent leases, nothing to renew
	verifyAt time.Time
	// clock is the router's epoch (NAT-PMP/PCP) or uptime (UPnP), in
	// seconds, as last seen at clockAt.
	clock     uint32
	clockAt   time.Time
	haveClock bool
}

// Run keeps the mappings until ctx ends, then removes the ones it added
// (unless Leave) and returns nil. It returns an error only when the
// mappings could not be made even once and ctx ended.
func (k *Keeper) Run(ctx context.Context) error {
	check := k.CheckInterval
	if check <= 0 {
		check = DefaultCheckInterval
	}
	st := &keepState{check: check, created: map[Key]bool{}}
	retry := keepMinRetry
	var lastErr error
	ok := false
	for ctx.Err() == nil {
		wait, err := k.round(ctx, st)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			lastErr = err
			k.log("error", "%v; trying again in %v", err, retry)
			st.mapper = nil // rediscover: the router may have restarted elsewhere
			wait, retry = retry, min(retry*2, keepMaxRetry)
		} else {
			ok, retry = true, keepMinRetry
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	k.cleanup(ctx, st.mapper, st.created)
	if !ok && lastErr != nil {
		return lastErr
	}
	return nil
}

// round does what is due: a full round (plan, add, verify) the first time,
// after a failure and after the router restarted or lost a mapping; else a
// renewal when half the lease has passed; else one cheap check. It returns
// how long to wait before the next round.
func (k *Keeper) round(ctx context.Context, st *keepState) (time.Duration, error) {
	unlock, err := k.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	full := st.mapper == nil
	if full {
		m, err := k.Open(ctx)
		if err != nil {
			return 0, err
		}
		st.mapper, st.haveClock = m, false
	}
	now := time.Now()
	bulk := bulkChecked(st.mapper)
	if !full && !bulk {
		restarted, err := k.restarted(ctx, st)
		if err != nil {
			return 0, err
		}
		full = restarted
	}
	if !full && st.mapper.Lister != nil && (bulk || !st.haveClock || !now.Before(st.verifyAt)) {
		missing, err := k.missing(ctx, st)
		if err != nil {
			return 0, err
		}
		full = len(missing) > 0
		st.verifyAt = now.Add(k.verifyInterval(st.check))
	}
	switch {
	case full:
		err = k.full(ctx, st)
	case !st.renewAt.IsZero() && !now.Before(st.renewAt):
		err = k.renew(ctx, st)
	}
	if err != nil {
		return 0, err
	}
	wait := st.check
	if !st.renewAt.IsZero() {
		wait = min(wait, time.Until(st.renewAt))
	}
	return max(wait, keepMinRetry), nil
}

// bulkChecked reports whether m's router is checked by looking the
// mappings up (one bulk page on IGD v2); elsewhere the router's clock
// is the check, with a lookup now and then.
func bulkChecked(m *Mapper) bool {
	u, ok := m.Router.(*UPnP)
	return ok && m.Lister != nil && u.BulkLookup()
}

func (k *Keeper) verifyInterval(check time.Duration) time.Duration {
	n := k.VerifyEvery
	if n <= 0 {
		n = DefaultVerifyEvery
	}
	return time.Duration(n) * check
}

// restarted asks the router for its epoch (NAT-PMP, PCP) or uptime (UPnP),
// one request, and reports whether it went back: the router restarted and
// forgot its mappings.
func (k *Keeper) restarted(ctx context.Context, st *keepState) (bool, error) {
	var clock uint32
	switch r := st.mapper.Router.(type) {
	case *PMP:
		_, e, err := r.ExternalAddrEpoch(ctx)
		if err != nil && !errors.Is(err, ErrNoExternalAddr) {
			return false, err
		}
		clock = e
	case *PCP:
		e, err := r.Announce(ctx)
		if err != nil {
			return false, err
		}
		clock = e
	case *UPnP:
		_, up, err := r.Status(ctx)
		if err != nil {
			return false, err
		}
		if up <= 0 {
			st.haveClock = false // no uptime: the lookups tell instead
			return false, nil
		}
		clock = uint32(min(up/time.Second, 1<<32-1))
	default:
		return false, nil
	}
	now := time.Now()
	back := st.haveClock && epochRestarted(st.clock, st.clockAt, clock, now)
	if back {
		k.log("router-restarted", "the router's clock went from %ds to %ds: it restarted; adding the mappings again", st.clock, clock)
	}
	st.clock, st.clockAt, st.haveClock = clock, now, true
	return back, nil
}

// missing looks the mappings up and returns those this Keeper made that
// the router no longer holds for this host.
func (k *Keeper) missing(ctx context.Context, st *keepState) ([]uint16, error) {
	have, _, err := st.mapper.existing(ctx, k.Requests)
	if err != nil {
		return nil, err
	}
	var gone []uint16
	for _, r := range k.Requests {
		key := Key{r.Protocol, r.ExternalPort}
		mp, ok := have[key]
		if st.created[key] && (!ok || mp.InternalAddr != r.InternalAddr || mp.InternalPort != r.InternalPort) {
			gone = append(gone, r.ExternalPort)
		}
	}
	return gone, nil
}

// full plans and applies every request and learns the granted leases.
func (k *Keeper) full(ctx context.Context, st *keepState) error {
	steps, err := st.mapper.PlanAdd(ctx, k.Requests)
	if err != nil {
		return err
	}
	var restored []uint16
	for _, s := range steps {
		if s.Known && s.Action == ActionAdd && st.created[s.key()] {
			restored = append(restored, s.Request.ExternalPort)
		}
	}
	if err := st.mapper.Add(ctx, steps); err != nil {
		return err
	}
	// The router's clock now, so that a restart right after this round
	// shows at the next check (IGD v2 is checked by its table instead).
	if !bulkChecked(st.mapper) {
		if _, err := k.restarted(ctx, st); err != nil {
			st.haveClock = false
		}
	}
	var added, renewed []uint16
	for _, s := range steps {
		switch s.Action {
		case ActionAdd, ActionReplace:
			if !s.Known && st.created[s.key()] {
				renewed = append(renewed, s.Request.ExternalPort)
			} else if !st.created[s.key()] {
				added = append(added, s.Request.ExternalPort)
			}
			st.created[s.key()] = true
		case ActionRenew:
			renewed = append(renewed, s.Request.ExternalPort)
		}
	}
	k.granted(st, steps)
	if len(restored) > 0 {
		k.log("restored", "mappings had vanished (router restart?), added again: %s", CompressPorts(restored))
	}
	if len(added) > 0 {
		k.log("added", "%s via %s", CompressPorts(added), st.mapper.Router.Method())
	}
	if len(renewed) > 0 && len(restored) == 0 {
		k.log("renewed", "%s via %s", CompressPorts(renewed), st.mapper.Router.Method())
	}
	return nil
}

// renew asks again for every mapping this Keeper made: one request each,
// no plan and no lookup (the router's answer says whether it holds them).
func (k *Keeper) renew(ctx context.Context, st *keepState) error {
	var steps []Step
	for _, r := range k.Requests {
		if st.created[Key{r.Protocol, r.ExternalPort}] {
			steps = append(steps, Step{Request: r, Action: ActionRenew, Known: true})
		}
	}
	m := *st.mapper
	m.Verify = false
	if err := m.Add(ctx, steps); err != nil {
		return err
	}
	k.granted(st, steps)
	var ports []uint16
	for _, s := range steps {
		ports = append(ports, s.Request.ExternalPort)
	}
	k.log("renewed", "%s via %s", CompressPorts(ports), st.mapper.Router.Method())
	return nil
}

// granted sets the next renewal at half the shortest lease the router
// granted, and takes the NAT-PMP/PCP epoch the answers carried.
func (k *Keeper) granted(st *keepState, steps []Step) {
	now := time.Now()
	minLease := time.Duration(0)
	for _, s := range steps {
		if g := s.Granted; g != nil && g.Lease > 0 && (minLease == 0 || g.Lease < minLease) {
			minLease = g.Lease
		}
	}
	st.renewAt = time.Time{}
	if minLease > 0 {
		st.renewAt = now.Add(minLease / 2)
	}
	st.verifyAt = now.Add(k.verifyInterval(st.check))
}

func (k *Keeper) cleanup(ctx context.Context, mapper *Mapper, created map[Key]bool) {
	if len(created) == 0 {
		return
	}
	var ports []uint16
	for key := range created {
		ports = append(ports, key.Port)
	}
	if k.Leave {
		k.log("left", "leaving %s mapped", CompressPorts(ports))
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keepCleanupTimeout)
	defer cancel()
	if unlock, err := k.lock(cctx); err == nil {
		defer unlock()
	}
	if mapper == nil {
		m, err := k.Open(cctx)
		if err != nil {
			k.log("error", "cannot reach the router to remove %s: %v", CompressPorts(ports), err)
			return
		}
		mapper = m
	}
	var reqs []Request
	for _, r := range k.Requests {
		if created[Key{r.Protocol, r.ExternalPort}] {
			reqs = append(reqs, r)
		}
	}
	steps, err := mapper.PlanRemove(cctx, reqs)
	if err == nil {
		err = mapper.Remove(cctx, steps)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		k.log("error", "removing %s: %v", CompressPorts(ports), err)
		return
	}
	k.log("removed", "%s", CompressPorts(ports))
}
