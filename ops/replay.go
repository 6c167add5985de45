// Package ops is what an operator runs against a referd deployment: replaying
// stored billing events, a status report of the queues and of what needs attention,
// and housekeeping that prunes what referd no longer needs. The referd binary
// exposes them as subcommands and as a periodic task.
package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/promo"
	"github.com/referd/referd/providers"
	_ "github.com/referd/referd/providers/all" // the providers referd ships
	"github.com/referd/referd/store"
)

// ReplayFilter selects the stored billing events to replay.
type ReplayFilter struct {
	// Provider is a registered provider's name (providers.Names); "" is every provider.
	Provider string
	// Status is the events' status now: failed, unattributed, received, processed or
	// ignored; "" is failed and unattributed.
	Status store.EventStatus
	// Since keeps events received at or after it; zero is any time.
	Since time.Time
	// ProgramID is a program's public id; "" is every program.
	ProgramID string
	// Resolver, when set, asks a provider which promotion code an id no code names
	// is, as the workers do (referd events replay gives it Stripe's, promo.Stripe).
	Resolver promo.Resolver
}

// replayStatuses are the statuses a replay takes, in the order its error lists them.
var replayStatuses = []store.EventStatus{store.EventFailed, store.EventUnattributed, store.EventReceived,
	store.EventProcessed, store.EventIgnored}

// ReplayResult counts what became of the replayed events.
type ReplayResult struct {
	// Replayed is how many events were taken up, errors included.
	Replayed int `json:"replayed"`
	// By the status each event ended in.
	Processed    int `json:"processed"`
	Ignored      int `json:"ignored"`
	Unattributed int `json:"unattributed"`
	Failed       int `json:"failed"`
	// Errors are events whose processing did not finish (a database error): they are
	// left received (or as they were, if putting them back failed), and the
	// workers' sweep processes received ones within minutes.
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// String is a one-line summary: "replayed 12 events: 10 processed, 1 unattributed,
// 1 failed, 0 errors" (ignored events are mentioned when there are some).
func (r ReplayResult) String() string {
	parts := []string{fmt.Sprintf("%d processed", r.Processed)}
	if r.Ignored > 0 {
		parts = append(parts, fmt.Sprintf("%d ignored", r.Ignored))
	}
	parts = append(parts, fmt.Sprintf("%d unattributed", r.Unattributed), fmt.Sprintf("%d failed", r.Failed),
		plural(r.Errors, "error", "errors"))
	return fmt.Sprintf("replayed %s: %s", plural(r.Replayed, "event", "events"), strings.Join(parts, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// replayPage is how many events one keyset page holds.
const replayPage = 200

// Replay processes again, through the workers' own path (jobs.ProcessEvent), the
// stored billing events that match f, one at a time in the order they were stored.
// Each is first put back to received, so that processed and ignored events are
// processed again rather than skipped; that is safe because every effect of an
// event is keyed by the provider's ids (transaction keys are "provider:object id"),
// so an event that was processed before changes nothing.
//
// progress, if not nil, is called after each event with how many are done and how
// many matched at the start; the last call has done == total. Events that arrive
// during the replay are left out. A database error on one event is counted in
// Errors and the replay goes on; Replay returns an error only for a bad filter, a
// failed page query, or when ctx ends, with what was done until then.
func Replay(ctx context.Context, db *store.DB, f ReplayFilter, progress func(done, total int)) (ReplayResult, error) {
	var res ReplayResult
	sf, err := storeFilter(ctx, db, f)
	if err != nil {
		return res, err
	}
	total, maxPK, err := store.CountReplayCandidates(ctx, db, sf)
	if err != nil {
		return res, fmt.Errorf("ops.Replay: %w", err)
	}
	if total == 0 {
		return res, nil
	}
	sf.UpTo = maxPK
	report := func() {
		if progress != nil {
			progress(res.Replayed, max(total, res.Replayed))
		}
	}
	var after int64
	for {
		pks, err := store.ReplayCandidates(ctx, db, sf, after, replayPage)
		if err != nil {
			return res, fmt.Errorf("ops.Replay: %w", err)
		}
		for _, pk := range pks {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			res.Replayed++
			status, err := replayOne(ctx, db, pk, f.Resolver)
			if err != nil {
				if ctx.Err() != nil {
					res.Replayed--
					return res, ctx.Err()
				}
				res.Errors++
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
			} else {
				res.count(status)
			}
			report()
		}
		if len(pks) < replayPage {
			break
		}
		after = pks[len(pks)-1]
	}
	// Events that stopped matching before their turn (the workers got to them) make
	// the count smaller than the start's: say so, so the progress display ends.
	if progress != nil && res.Replayed < total {
		progress(res.Replayed, res.Replayed)
	}
	return res, nil
}

func (r *ReplayResult) count(status store.EventStatus) {
	switch status {
	case store.EventProcessed:
		r.Processed++
	case store.EventIgnored:
		r.Ignored++
	case store.EventUnattributed:
		r.Unattributed++
	case store.EventFailed:
		r.Failed++
	}
}

// ReplayEvent processes one stored billing event of the program again, as Replay
// processes each event it takes (the console's replay of one event): it is put back
// to received and processed through jobs.ProcessEvent, and the status it ended in is
// returned. A payment still in its hold is left received for its task (the status is
// then received). Another program's event, or none, is store.ErrNotFound. resolver
// is the workers' promotion-id resolver (nil: none), as ReplayFilter.Resolver.
func ReplayEvent(ctx context.Context, db *store.DB, programPK, eventPK int64, resolver promo.Resolver) (store.EventStatus, error) {
	if _, err := store.ProgramProviderEvent(ctx, db, programPK, eventPK); err != nil {
		return "", fmt.Errorf("ops.ReplayEvent(%d): %w", eventPK, err)
	}
	return replayOne(ctx, db, eventPK, resolver)
}

// replayOne processes event pk again and returns the status it ended in.
func replayOne(ctx context.Context, db *store.DB, pk int64, resolver promo.Resolver) (store.EventStatus, error) {
	if err := store.ResetProviderEvent(ctx, db, pk); err != nil {
		return "", err
	}
	var held *jobs.HeldError
	if err := jobs.ProcessEventWith(ctx, db, pk, resolver); errors.As(err, &held) {
		return store.EventReceived, nil // a payment in its hold: its task processes it then
	} else if err != nil {
		return "", fmt.Errorf("event %d: %w", pk, err)
	}
	status, err := store.ProviderEventStatus(ctx, db, pk)
	if err != nil {
		return "", err
	}
	if status == store.EventReceived {
		return "", fmt.Errorf("event %d: still received after processing", pk)
	}
	return status, nil
}

// storeFilter checks f and turns it into the store's filter.
func storeFilter(ctx context.Context, db *store.DB, f ReplayFilter) (store.ReplayFilter, error) {
	sf := store.ReplayFilter{Provider: f.Provider, Since: f.Since, ProgramID: f.ProgramID}
	switch {
	case f.Status == "":
		sf.Statuses = []store.EventStatus{store.EventFailed, store.EventUnattributed}
	case slices.Contains(replayStatuses, f.Status):
		sf.Statuses = []store.EventStatus{f.Status}
	default:
		return sf, fmt.Errorf("ops.Replay: status %q: must be one of %s", f.Status, joinStatuses(replayStatuses))
	}
	if f.Provider != "" {
		if _, ok := providers.Lookup(f.Provider); !ok {
			return sf, fmt.Errorf("ops.Replay: provider %q: must be one of %s", f.Provider, strings.Join(providers.Names(), ", "))
		}
	}
	if f.ProgramID != "" {
		if _, err := store.ProgramByID(ctx, db, f.ProgramID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return sf, fmt.Errorf("ops.Replay: no program with id %q", f.ProgramID)
			}
			return sf, fmt.Errorf("ops.Replay: %w", err)
		}
	}
	return sf, nil
}

func joinStatuses(ss []store.EventStatus) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
