package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// ownRedis starts a redis-server of the test's own on port, keeping nothing on disk,
// and returns a function that kills it (as a crash would: its queues are lost).
func ownRedis(t *testing.T, port int) (kill func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (apt-get install -y redis-server): %v", err)
	}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for deadline := time.Now().Add(wait); ; {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %d", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	kill = func() { once.Do(func() { cmd.Process.Kill(); <-done }) }
	t.Cleanup(kill)
	return kill
}

// Redis dies for 10 s while signed payments pour in at about 100 a second, and comes
// back empty: every payment answered 200 meanwhile was stored, and all of them are
// processed within a minute of Redis's return, without restarting referd (the
// sweep, not the lost tasks). Then each acknowledged payment is exactly one
// transaction and the referrer's balance is exactly the sum of its rewards.
func TestRedisLostWhileIngesting(t *testing.T) {
	t.Parallel()
	db, dbURL := storetest.NewWithURL(t)
	redisPort := freePort(t)
	killRedis := ownRedis(t, redisPort)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := []string{"DATABASE_URL=" + dbURL, fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", redisPort), fmt.Sprintf("PORT=%d", port),
		"REFERD_HOST=127.0.0.1", "REFERD_LOG_FORMAT=json", "REFERD_CONCURRENCY=8"}
	_, exited, stderr := startReferd(t, env, "serve")
	waitHealthy(t, base, exited, stderr)

	prog := createProgram(t, dbURL, "Acme", "https://acme.test")
	call := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+prog.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %v %v", method, path, resp, err)
		}
		resp.Body.Close()
	}
	call(http.MethodPut, "/v1/integrations/stripe", `{"webhook_secrets": ["whsec_t"]}`)
	call(http.MethodPatch, "/v1/program", `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"}]}`)
	call(http.MethodPost, "/v1/customers", `{"key": "ref"}`)
	call(http.MethodPost, "/v1/customers", `{"key": "friend", "referring_customer": {"key": "ref"}}`)
	programID := prog.Program["id"].(string)

	var mu sync.Mutex
	var acked []string
	send := func(id string) {
		now := time.Now().Unix()
		body := fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,"livemode":false,"type":"invoice.paid",`+
			`"data":{"object":{"id":"in_%s","object":"invoice","amount_paid":1000,"currency":"usd","customer":"cus_f","metadata":{"customer_key":"friend"}}}}`,
			id, now, id)
		mac := hmac.New(sha256.New, []byte("whsec_t"))
		fmt.Fprintf(mac, "%d.%s", now, body)
		req, _ := http.NewRequest(http.MethodPost, base+"/ingest/stripe/"+programID, strings.NewReader(body))
		req.Header.Set("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now, hex.EncodeToString(mac.Sum(nil))))
		resp, err := (&http.Client{Timeout: wait}).Do(req)
		if err != nil {
			return // a sender retries what was not answered 2xx; this one is simply not counted
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
		}
	}
	// About 100 a second: 3 s before the outage, 10 s of it, 2 s after.
	ingest := func(from, to int) {
		var wg sync.WaitGroup
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := from; i < to; i++ {
			<-tick.C
			wg.Go(func() { send(fmt.Sprintf("evt_%d", i)) })
		}
		wg.Wait()
	}
	ingest(0, 300)
	killRedis()
	outage := time.Now()
	ingest(300, 1300)
	duringOutage := len(acked)
	ownRedis(t, redisPort) // back, and empty
	back := time.Now()
	t.Logf("Redis down %s; %d payments acknowledged so far", back.Sub(outage).Round(time.Millisecond), duringOutage)
	ingest(1300, 1500)

	// Every acknowledged payment is processed within a minute of Redis's return.
	for {
		var left int
		if err := db.Get(&left, `SELECT count(*) FROM provider_events WHERE status = 'received'`); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Since(back) > time.Minute {
			t.Fatalf("%d payments still not processed a minute after Redis came back", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("all %d acknowledged payments processed %s after Redis came back", len(acked), time.Since(back).Round(time.Second))

	var p store.Program
	if err := db.Get(&p.PK, `SELECT pk FROM programs WHERE id = $1`, programID); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := db.Select(&keys, `SELECT key FROM transactions WHERE program_pk = $1 ORDER BY key`, p.PK); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, k := range keys {
		seen[k]++
	}
	for _, id := range acked {
		if n := seen["stripe:in_"+id]; n != 1 {
			t.Errorf("acknowledged payment %s has %d transactions, want 1", id, n)
		}
	}
	if len(keys) > len(acked)+20 {
		// A payment whose answer was lost may be stored without being counted as
		// acknowledged; far more transactions than answers would be duplicates.
		t.Errorf("%d transactions for %d acknowledged payments", len(keys), len(acked))
	}
	var balance, rewards int64
	if err := db.Get(&balance, `SELECT coalesce(sum(b.amount), 0) FROM balances b JOIN customers c ON c.pk = b.customer_pk WHERE c.key = 'ref' AND c.program_pk = $1`, p.PK); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&rewards, `SELECT coalesce(sum(w.amount - w.reversed), 0) FROM rewards w JOIN customers c ON c.pk = w.customer_pk WHERE c.key = 'ref' AND c.program_pk = $1`, p.PK); err != nil {
		t.Fatal(err)
	}
	if balance != rewards || balance != int64(len(keys))*100 {
		t.Errorf("referrer balance %d, rewards %d, want both %d (10%% of %d payments of 10.00)", balance, rewards, len(keys)*100, len(keys))
	}
	// And the API says the same.
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/customers/ref/balance", nil)
	req.Header.Set("Authorization", "Bearer "+prog.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Data struct {
			Balance []struct {
				Amount json.Number `json:"amount"`
			} `json:"balance"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || len(got.Data.Balance) != 1 ||
		got.Data.Balance[0].Amount.String() != fmt.Sprint(len(keys)) {
		t.Errorf("GET balance = %+v (%v), want %d.00 usd", got, err, len(keys))
	}
}

// referdUnderLoad is a serve process of a test, a program with a 10% rule and a
// referred friend, and senders of signed payments that retry what was not answered
// 2xx, as Stripe does.
type referdUnderLoad struct {
	t         *testing.T
	db        *store.DB
	dbURL     string
	env       []string
	base      string
	apiKey    string
	programID string
}

func (r *referdUnderLoad) call(method, path, body string) *http.Response {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode >= 300 {
		r.t.Fatalf("%s %s: %v %v", method, path, resp, err)
	}
	return resp
}

// deliver sends payment id until it is answered 200, or stop closes.
func (r *referdUnderLoad) deliver(id string, stop <-chan struct{}) bool {
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		now := time.Now().Unix()
		body := fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,"livemode":false,"type":"invoice.paid",`+
			`"data":{"object":{"id":"in_%s","object":"invoice","amount_paid":1000,"currency":"usd","customer":"cus_f","metadata":{"customer_key":"friend"}}}}`,
			id, now, id)
		mac := hmac.New(sha256.New, []byte("whsec_t"))
		fmt.Fprintf(mac, "%d.%s", now, body)
		req, _ := http.NewRequest(http.MethodPost, r.base+"/ingest/stripe/"+r.programID, strings.NewReader(body))
		req.Header.Set("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now, hex.EncodeToString(mac.Sum(nil))))
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-stop:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// kill -9 of referd serve while 32 senders deliver payments; it is started again
// within 2 s. Every payment is answered 200 in the end (senders retry), each is
// exactly one transaction, all are processed within a minute of the restart, and
// the referrer's balance is exactly the sum of its rewards.
func TestKill9WhileIngesting(t *testing.T) {
	t.Parallel()
	db, dbURL := storetest.NewWithURL(t)
	redisPort := freePort(t)
	ownRedis(t, redisPort)
	port := freePort(t)
	r := &referdUnderLoad{t: t, db: db, dbURL: dbURL, base: fmt.Sprintf("http://127.0.0.1:%d", port),
		env: []string{"DATABASE_URL=" + dbURL, fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", redisPort), fmt.Sprintf("PORT=%d", port),
			"REFERD_HOST=127.0.0.1", "REFERD_LOG_FORMAT=json", "REFERD_CONCURRENCY=8"}}
	cmd, exited, stderr := startReferd(t, r.env, "serve")
	waitHealthy(t, r.base, exited, stderr)
	prog := createProgram(t, dbURL, "Acme", "https://acme.test")
	r.apiKey, r.programID = prog.APIKey, prog.Program["id"].(string)
	r.call(http.MethodPut, "/v1/integrations/stripe", `{"webhook_secrets": ["whsec_t"]}`).Body.Close()
	r.call(http.MethodPatch, "/v1/program", `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"}]}`).Body.Close()
	r.call(http.MethodPost, "/v1/customers", `{"key": "ref"}`).Body.Close()
	r.call(http.MethodPost, "/v1/customers", `{"key": "friend", "referring_customer": {"key": "ref"}}`).Body.Close()

	const senders, each = 32, 40
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for s := range senders {
		wg.Go(func() {
			for n := range each {
				if r.deliver(fmt.Sprintf("evt_%d_%d", s, n), stop) {
					mu.Lock()
					acked++
					mu.Unlock()
				}
			}
		})
	}
	for {
		mu.Lock()
		n := acked
		mu.Unlock()
		if n >= senders*each/3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill() // kill -9
	<-exited
	time.Sleep(time.Second)
	_, exited2, stderr2 := startReferd(t, r.env, "serve")
	waitHealthy(t, r.base, exited2, stderr2)
	restarted := time.Now()
	wg.Wait()
	close(stop)
	if acked != senders*each {
		t.Fatalf("%d of %d payments acknowledged after the restart", acked, senders*each)
	}
	for {
		var left int
		if err := db.Get(&left, `SELECT count(*) FROM provider_events WHERE status = 'received'`); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Since(restarted) > time.Minute {
			t.Fatalf("%d payments still not processed a minute after the restart\n%s", left, stderr2.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("all %d payments processed %s after the restart", acked, time.Since(restarted).Round(time.Second))
	var keys, distinct int
	if err := db.Get(&keys, `SELECT count(*) FROM transactions`); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&distinct, `SELECT count(DISTINCT event_id) FROM provider_events`); err != nil {
		t.Fatal(err)
	}
	if keys != senders*each || distinct != senders*each {
		t.Errorf("%d transactions and %d stored events for %d payments", keys, distinct, senders*each)
	}
	var balance, rewards int64
	db.Get(&balance, `SELECT coalesce(sum(amount), 0) FROM balances`)
	db.Get(&rewards, `SELECT coalesce(sum(amount - reversed), 0) FROM rewards`)
	if balance != rewards || balance != int64(senders*each)*100 {
		t.Errorf("balance %d, rewards %d, want both %d", balance, rewards, senders*each*100)
	}
}
