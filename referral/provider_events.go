package referral

import (
	"context"
	"strings"

	"github.com/referd/referd/providers"
	"github.com/referd/referd/store"
)

// ProviderEventView is a stored billing event as GET /v1/provider_events shows it.
type ProviderEventView struct {
	ID              int64             `json:"id"`
	Provider        string            `json:"provider"`
	EventID         string            `json:"event_id"`
	Type            string            `json:"type"`
	Status          store.EventStatus `json:"status"`
	Error           *string           `json:"error"`
	TransactionKeys []string          `json:"transaction_keys"`
	ReceivedAt      Time              `json:"received_at"`
	ProcessedAt     *Time             `json:"processed_at"`
}

// ProviderEventJSON is the API's view of e.
func ProviderEventJSON(e store.ProviderEvent) ProviderEventView {
	keys := []string(e.TransactionKeys)
	if keys == nil {
		keys = []string{}
	}
	return ProviderEventView{ID: e.PK, Provider: e.Provider, EventID: e.EventID, Type: e.Type, Status: e.Status,
		Error: NullString(e.Error), TransactionKeys: keys, ReceivedAt: Time(e.ReceivedAt), ProcessedAt: NullTime(e.ProcessedAt)}
}

// ProviderEvents lists the program's stored billing events, newest first.
func ProviderEvents(ctx context.Context, db *store.DB, p store.Program, provider, status string, limit, offset int) ([]store.ProviderEvent, int, error) {
	verr := &ValidationError{}
	if provider != "" {
		if _, ok := providers.Lookup(provider); !ok {
			verr.Add("provider", "The provider must be one of: "+strings.Join(providers.Names(), ", ")+".")
		}
	}
	if status != "" {
		oneOf(verr, "status", store.EventStatus(status), store.EventStatuses())
	}
	if err := verr.Err(); err != nil {
		return nil, 0, err
	}
	return store.ListProviderEvents(ctx, db, store.ProviderEventFilter{ProgramPK: p.PK, Provider: provider, Status: store.EventStatus(status), Limit: limit, Offset: offset})
}
