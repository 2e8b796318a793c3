package nat

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Keeper defaults.
const (
	DefaultCheckInterval = 30 * time.Second // how often permanent mappings are checked
	keepMinRetry         = time.Second
	keepMaxRetry         = 30 * time.Second
	keepCleanupTimeout   = 10 * time.Second
)

// KeepEvent is one thing a Keeper did or saw.
type KeepEvent struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"event"` // added, renewed, restored, router-restarted, error, removed, left
	Detail string    `json:"detail"`
}

// Keeper keeps a set of mappings alive: it adds them, renews them at about
// half their lease, re-adds them after the router restarts (NAT-PMP/PCP
// epoch going backwards, or UPnP mappings gone), survives a router that is
// down for a while without spinning, and on exit removes what it added.
type Keeper struct {
	// Open finds the router and returns a mapper for it; it is called
	// again after failures, as the router may come back elsewhere.
	Open     func(ctx context.Context) (*Mapper, error)
	Requests []Request
	// Leave keeps the mappings on exit instead of removing them.
	Leave bool
	// CheckInterval bounds the time between checks (permanent leases).
	CheckInterval time.Duration
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

// Run keeps the mappings until ctx ends, then removes the ones it added
// (unless Leave) and returns nil. It returns an error only when the
// mappings could not be made even once and ctx ended.
func (k *Keeper) Run(ctx context.Context) error {
	check := k.CheckInterval
	if check <= 0 {
		check = DefaultCheckInterval
	}
	created := map[Key]bool{}
	var (
		mapper    *Mapper
		retry     = keepMinRetry
		prevEpoch uint32
		prevAt    time.Time
		haveEpoch bool
		lastErr   error
		ok        bool
	)
	for ctx.Err() == nil {
		wait, err := func() (time.Duration, error) {
			unlock, err := k.lock(ctx)
			if err != nil {
				return 0, err
			}
			defer unlock()
			if mapper == nil {
				m, err := k.Open(ctx)
				if err != nil {
					return 0, err
				}
				mapper = m
			}
			steps, err := mapper.PlanAdd(ctx, k.Requests)
			if err != nil {
				return 0, err
			}
			var restored []uint16
			for _, s := range steps {
				if s.Known && s.Action == ActionAdd && created[s.key()] {
					restored = append(restored, s.Request.ExternalPort)
				}
			}
			if err := mapper.Add(ctx, steps); err != nil {
				return 0, err
			}
			now := time.Now()
			var added, renewed []uint16
			minLease, epoch, epochSeen := time.Duration(0), uint32(0), false
			for _, s := range steps {
				switch s.Action {
				case ActionAdd, ActionReplace:
					if !s.Known && created[s.key()] {
						renewed = append(renewed, s.Request.ExternalPort)
					} else if !created[s.key()] {
						added = append(added, s.Request.ExternalPort)
					}
					created[s.key()] = true
				case ActionRenew:
					renewed = append(renewed, s.Request.ExternalPort)
				}
				if g := s.Granted; g != nil {
					if g.Lease > 0 && (minLease == 0 || g.Lease < minLease) {
						minLease = g.Lease
					}
					if g.Method != MethodUPnP && (!epochSeen || g.Epoch < epoch) {
						epoch, epochSeen = g.Epoch, true
					}
				}
			}
			if epochSeen {
				if haveEpoch && epochRestarted(prevEpoch, prevAt, epoch, now) {
					k.log("router-restarted", "the router's epoch went from %ds to %ds: it restarted; mappings renewed", prevEpoch, epoch)
				}
				prevEpoch, prevAt, haveEpoch = epoch, now, true
			}
			if len(restored) > 0 {
				k.log("restored", "mappings had vanished (router restart?), added again: %s", CompressPorts(restored))
			}
			if len(added) > 0 {
				k.log("added", "%s via %s", CompressPorts(added), mapper.Router.Method())
			}
			if len(renewed) > 0 && len(restored) == 0 {
				k.log("renewed", "%s via %s", CompressPorts(renewed), mapper.Router.Method())
			}
			wait := check
			if minLease > 0 && minLease/2 < wait {
				wait = minLease / 2
			}
			return max(wait, keepMinRetry), nil
		}()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			lastErr = err
			k.log("error", "%v; trying again in %v", err, retry)
			mapper = nil // rediscover: the router may have restarted elsewhere
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
	k.cleanup(ctx, mapper, created)
	if !ok && lastErr != nil {
		return lastErr
	}
	return nil
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
