package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/referd/referd/batch"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// An event the database refuses that the receiver's checks let through (here: one
// a CHECK constraint of this test's schema refuses) is answered 400 alone: the
// events committed in the same group with it are stored and answered 200.
func TestRefusedEventDoesNotFailItsGroup(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `ALTER TABLE provider_events ADD CONSTRAINT no_poison CHECK (event_id NOT LIKE 'evt_poison%')`); err != nil {
		t.Fatal(err)
	}
	p, _, err := referral.CreateProgram(ctx, db, "Acme", "https://acme.test")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "whsec_group_test_0123456789"
	if _, err := referral.PutIntegration(ctx, db, p, "stripe", referral.IntegrationInput{WebhookSecrets: []string{secret}}, nil); err != nil {
		t.Fatal(err)
	}
	h := New(db, slog.New(slog.NewTextHandler(io.Discard, nil)), 1)
	// Each batch waits a little before it goes, so that a round's requests pile up
	// into a few batches; mixed counts the batches with good and poisoned events.
	var mixed atomic.Int32
	h.events = batch.New(1, 64, func(ctx context.Context, evs []store.ProviderEvent) ([]storedEvent, error) {
		time.Sleep(20 * time.Millisecond)
		poisoned := 0
		for _, ev := range evs {
			if strings.HasPrefix(ev.EventID, "evt_poison") {
				poisoned++
			}
		}
		if poisoned > 0 && poisoned < len(evs) {
			mixed.Add(1)
		}
		return insertEvents(ctx, db, evs)
	})
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	const rounds, good, poisoned = 5, 60, 4
	for round := range rounds {
		var ids []string
		for i := range good {
			ids = append(ids, fmt.Sprintf("evt_r%d_%d", round, i))
		}
		for i := range poisoned {
			ids = append(ids, fmt.Sprintf("evt_poison_r%d_%d", round, i))
		}
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				body := []byte(fmt.Sprintf(`{"id": %q, "object": "event", "type": "customer.created", "created": %d,
					"data": {"object": {"id": "cus_1", "object": "customer"}}}`, id, time.Now().Unix()))
				sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
				req, _ := http.NewRequest("POST", srv.URL+"/ingest/stripe/"+p.ID, bytes.NewReader(body))
				req.Header.Set("Stripe-Signature", sp.Header)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer res.Body.Close()
				var eb struct {
					Errors map[string][]string `json:"errors"`
				}
				json.NewDecoder(res.Body).Decode(&eb)
				switch bad := strings.HasPrefix(id, "evt_poison"); {
				case bad && (res.StatusCode != 400 || len(eb.Errors["event"]) == 0):
					t.Errorf("%s: status %d, reasons %v; want 400 with the database's reason", id, res.StatusCode, eb.Errors)
				case !bad && res.StatusCode != 200:
					t.Errorf("%s: status %d, want 200", id, res.StatusCode)
				}
			})
		}
		wg.Wait()
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM provider_events WHERE event_id LIKE 'evt_r%'`); err != nil || n != rounds*good {
		t.Errorf("%d good events stored (%v), want %d", n, err, rounds*good)
	}
	if mixed.Load() == 0 {
		t.Error("no batch mixed good and poisoned events: the test proves nothing")
	}
	t.Logf("%d batches mixed good and poisoned events", mixed.Load())
}
