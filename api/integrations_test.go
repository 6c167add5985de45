package api_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/referd/referd/store"
)

func TestIntegrations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := "whsec_0123456789abcdefghij"
	i := e.must(200, "PUT", "/v1/integrations/stripe", `{"webhook_secrets": ["`+secret+`", "whsec_rotated_secret_zzzz"]}`).data()
	if i["provider"] != "stripe" || i["webhook_url"] != "http://referd.test/ingest/stripe/"+e.prog.ID || i["customer_key_field"] != "customer_key" {
		t.Errorf("integration = %v", i)
	}
	secrets := i["webhook_secrets"].([]any)
	if len(secrets) != 2 || secrets[0] != "****ghij" || secrets[1] != "****zzzz" {
		t.Errorf("secrets shown as %v, want masked", secrets)
	}
	cb := e.must(200, "PUT", "/v1/integrations/chargebee", `{"username": "cb-user", "password": "a-long-password-1234", "customer_key_field": "referd_id"}`).data()
	if cb["username"] != "cb-user" || cb["password"] != "****1234" || cb["customer_key_field"] != "referd_id" {
		t.Errorf("chargebee = %v", cb)
	}
	// Replacing keeps one integration per provider.
	e.must(200, "PUT", "/v1/integrations/stripe", `{"webhook_secret": "whsec_only_one_secret_now"}`)
	l := e.must(200, "GET", "/v1/integrations", nil).list()
	if len(l) != 2 || l[0].(map[string]any)["provider"] != "chargebee" || len(l[1].(map[string]any)["webhook_secrets"].([]any)) != 1 {
		t.Errorf("list = %v", l)
	}
	for _, raw := range []string{string(e.must(200, "GET", "/v1/integrations", nil).Raw), string(e.must(200, "GET", "/v1/integrations/stripe", nil).Raw)} {
		if strings.Contains(raw, "whsec_only") || strings.Contains(raw, "a-long-password") {
			t.Errorf("a secret leaked: %s", raw)
		}
	}
	wantError(t, e.offSpec().call("PUT", "/v1/integrations/paypal", `{"webhook_secrets": ["x"]}`), 404, "")
	wantError(t, e.call("PUT", "/v1/integrations/paddle", `{}`), 422, "webhook_secrets")
	wantError(t, e.call("PUT", "/v1/integrations/paddle", `{"webhook_secrets": [""]}`), 422, "webhook_secrets")
	wantError(t, e.call("PUT", "/v1/integrations/chargebee", `{"username": "u"}`), 422, "password")
	wantError(t, e.offSpec().call("PUT", "/v1/integrations/stripe", `{"webhook_secrets": ["whsec_x"], "customer_key_field": "a b"}`), 422, "customer_key_field")
	d := e.must(200, "DELETE", "/v1/integrations/chargebee", nil).data()
	if d["provider"] != "chargebee" {
		t.Errorf("delete answered %v", d)
	}
	wantError(t, e.call("DELETE", "/v1/integrations/chargebee", nil), 404, "")
	wantError(t, e.call("GET", "/v1/integrations/paddle", nil), 404, "")
	// Another program sees none of them.
	_, keyB := e.newProgram("Beta", "https://beta.test")
	if r := e.callKey(keyB, "GET", "/v1/integrations", nil); len(r.list()) != 0 {
		t.Errorf("program B sees %s", r.Raw)
	}
}

// Stored provider events are listed newest first and filtered; the same event stored
// again, even concurrently, is one row.
func TestProviderEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now().UTC()
	ev := func(provider, id, typ string) store.ProviderEvent {
		return store.ProviderEvent{ProgramPK: e.prog.PK, Provider: provider, EventID: id, Type: typ, Payload: []byte(`{"id":"` + id + `"}`), ReceivedAt: now}
	}
	var wg sync.WaitGroup
	news := make(chan int, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := store.InsertProviderEvents(context.Background(), e.db, []store.ProviderEvent{
				ev("stripe", "evt_1", "invoice.paid"), ev("paddle", "evt_1", "transaction.completed")})
			if err != nil {
				t.Error(err)
				return
			}
			n := 0
			for _, b := range got {
				if b {
					n++
				}
			}
			news <- n
		}()
	}
	wg.Wait()
	close(news)
	total := 0
	for n := range news {
		total += n
	}
	if total != 2 {
		t.Errorf("%d events inserted by 5 concurrent deliveries of 2, want 2", total)
	}
	l := e.must(200, "GET", "/v1/provider_events", nil).list()
	if len(l) != 2 {
		t.Fatalf("events = %v", l)
	}
	first := l[0].(map[string]any)
	if first["status"] != "received" || first["event_id"] != "evt_1" || first["processed_at"] != nil || len(first["transaction_keys"].([]any)) != 0 {
		t.Errorf("event = %v", first)
	}
	if l := e.must(200, "GET", "/v1/provider_events?provider=paddle", nil).list(); len(l) != 1 || l[0].(map[string]any)["type"] != "transaction.completed" {
		t.Errorf("paddle events = %v", l)
	}
	if l := e.must(200, "GET", "/v1/provider_events?status=failed", nil).list(); len(l) != 0 {
		t.Errorf("failed events = %v", l)
	}
	wantError(t, e.offSpec().call("GET", "/v1/provider_events?status=lost", nil), 422, "status")
	wantError(t, e.offSpec().call("GET", "/v1/provider_events?provider=paypal", nil), 422, "provider")
	_, keyB := e.newProgram("Beta", "https://beta.test")
	if r := e.callKey(keyB, "GET", "/v1/provider_events", nil); len(r.list()) != 0 {
		t.Errorf("program B sees %s", r.Raw)
	}
}
