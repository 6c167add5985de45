package api_test

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// The customer flow of the seed guide (001): a referrer signs up, a friend signs up
// with the referrer's key from the cookie, both are read back.
func TestSeedCustomerFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	alice := e.must(201, "POST", "/v1/customers", `{"key": "customer_123", "email": "alice@example.com", "name": "Alice"}`).data()
	for field, want := range map[string]any{
		"key": "customer_123", "email": "alice@example.com", "name": "Alice", "surname": nil,
		"status": "active", "approved": true, "referring_customer": nil, "referrals_count": float64(0),
		"referral_link": "https://acme.test?ref=customer_123",
	} {
		if got := alice[field]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("alice.%s = %v, want %v", field, got, want)
		}
	}
	if id, _ := alice["id"].(string); id == "" {
		t.Errorf("alice has no generated id: %v", alice)
	}
	if links, _ := alice["referral_links"].([]any); len(links) != 1 || links[0] != "https://acme.test?ref=customer_123" {
		t.Errorf("referral_links = %v", alice["referral_links"])
	}
	if _, ok := alice["metadata"].(map[string]any); !ok {
		t.Errorf("metadata is not an object: %v", alice["metadata"])
	}
	for _, f := range []string{"created_at", "updated_at"} {
		if s, _ := alice[f].(string); len(s) != len("2025-05-09T17:42:13.000000Z") || !strings.HasSuffix(s, "Z") {
			t.Errorf("%s = %q, want the form 2025-05-09T17:42:13.000000Z", f, s)
		}
	}

	bob := e.must(201, "POST", "/v1/customers", `{"referring_customer": {"key": "customer_123"}, "key": "customer_456", "email": "bob@example.com", "name": "Bob"}`).data()
	ref, _ := bob["referring_customer"].(map[string]any)
	if ref["key"] != "customer_123" || ref["id"] != alice["id"] || ref["email"] != "alice@example.com" || ref["name"] != "Alice" {
		t.Errorf("bob.referring_customer = %v", bob["referring_customer"])
	}

	got := e.must(200, "GET", "/v1/customers/customer_123", nil).data()
	if got["referrals_count"] != float64(1) {
		t.Errorf("alice.referrals_count = %v, want 1", got["referrals_count"])
	}
	// By id as well as by key.
	if byID := e.must(200, "GET", "/v1/customers/"+alice["id"].(string), nil).data(); byID["key"] != "customer_123" {
		t.Errorf("get by id: %v", byID)
	}

	refs := e.must(200, "GET", "/v1/customers/customer_123/referrals", nil)
	if l := refs.list(); len(l) != 1 || l[0].(map[string]any)["key"] != "customer_456" {
		t.Errorf("referrals = %s", refs.Raw)
	}
	if meta, _ := refs.Body["meta"].(map[string]any); meta["total"] != float64(1) {
		t.Errorf("referrals meta = %v", refs.Body["meta"])
	}

	ev := e.outbox()
	if len(ev) != 2 || ev[0].Event != "customer.created" || ev[1].Event != "customer.created" {
		t.Fatalf("outbox = %+v", ev)
	}
	// The event carries exactly the customer object the API answered.
	if !reflect.DeepEqual(ev[0].Payload, alice) {
		t.Errorf("customer.created payload = %v\nwant %v", ev[0].Payload, alice)
	}
	if !reflect.DeepEqual(ev[1].Payload, bob) {
		t.Errorf("customer.created payload = %v\nwant %v", ev[1].Payload, bob)
	}
}

func TestCreateCustomerReferrerByIDWinsOverKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", map[string]any{"id": "ref_a", "key": "key_a"})
	e.must(201, "POST", "/v1/customers", map[string]any{"id": "ref_b", "key": "key_b"})
	c := e.must(201, "POST", "/v1/customers", map[string]any{"key": "friend", "referring_customer": map[string]any{"id": "ref_a", "key": "key_b"}}).data()
	if c["referring_customer"].(map[string]any)["id"] != "ref_a" {
		t.Errorf("referring_customer = %v, want ref_a (id wins over key)", c["referring_customer"])
	}
	// An id that does not exist is not rescued by a key that does.
	r := e.call("POST", "/v1/customers", map[string]any{"key": "friend2", "referring_customer": map[string]any{"id": "nope", "key": "key_b"}})
	wantError(t, r, 422, "referring_customer.id")
}

func TestCreateCustomerGeneratesIDAndKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.must(201, "POST", "/v1/customers", `{}`).data()
	b := e.must(201, "POST", "/v1/customers", `{"id": null, "key": null, "email": null}`).data()
	for _, c := range []map[string]any{a, b} {
		if c["id"] == "" || c["key"] == "" || c["id"] == nil || c["key"] == nil {
			t.Fatalf("id/key not generated: %v", c)
		}
	}
	if a["id"] == b["id"] || a["key"] == b["key"] {
		t.Errorf("generated identifiers repeat: %v %v", a, b)
	}
	if a["source"] != "api" {
		t.Errorf("source = %v, want api (created through the API)", a["source"])
	}
	// Numeric ids, as SDKs send them, are accepted as text.
	n := e.must(201, "POST", "/v1/customers", `{"id": 12345, "key": 678}`).data()
	if n["id"] != "12345" || n["key"] != "678" {
		t.Errorf("numeric id/key: %v", n)
	}
}

func TestCreateCustomerErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"id": "c1", "key": "k1", "email": "Taken@Example.com"}`)

	for _, tc := range []struct {
		name    string
		body    string
		status  int
		field   string
		offSpec bool // the body breaks openapi.json
	}{
		{"unknown referrer key", `{"key": "x1", "referring_customer": {"key": "ghost"}}`, 422, "referring_customer.key", false},
		{"unknown referrer id", `{"key": "x1", "referring_customer": {"id": "ghost"}}`, 422, "referring_customer.id", false},
		{"empty referring_customer", `{"key": "x1", "referring_customer": {}}`, 422, "referring_customer", true},
		{"self-referral by key", `{"key": "me", "referring_customer": {"key": "me"}}`, 422, "referring_customer", false},
		{"self-referral by id", `{"id": "me", "referring_customer": {"id": "me"}}`, 422, "referring_customer", false},
		{"self-referral of an existing customer", `{"id": "c1", "key": "k1", "referring_customer": {"key": "k1"}}`, 422, "referring_customer", false},
		{"duplicate id", `{"id": "c1", "key": "new"}`, 409, "id", false},
		{"duplicate key", `{"key": "k1"}`, 409, "key", false},
		{"duplicate email, other case", `{"key": "new", "email": "taken@example.COM"}`, 409, "email", false},
		{"invalid email", `{"key": "new", "email": "not-an-email"}`, 422, "email", false},
		{"key with a slash", `{"key": "a/b"}`, 422, "key", true},
		{"metadata not an object", `{"key": "new", "metadata": [1]}`, 422, "metadata", true},
		{"name of the wrong type", `{"key": "new", "name": {"first": "x"}}`, 422, "name", true},
		{"body is an array", `[]`, 422, "body", true},
		{"NUL in a name", `{"key": "new", "name": "a\u0000b"}`, 422, "name", false},
		{"NUL in metadata", `{"key": "new", "metadata": {"a": "\u0000"}}`, 422, "metadata", false},
		{"huge number in metadata", `{"key": "new", "metadata": {"a": [1e999999]}}`, 422, "metadata", false},
		{"key of the wrong type", `{"key": {"a": 1}}`, 422, "key", true},
		{"malformed JSON", `{"key": "x"`, 400, "", true},
		{"not JSON at all", `key=x`, 400, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.offSpecIf(tc.offSpec).call("POST", "/v1/customers", tc.body), tc.status, tc.field)
		})
	}
	// Nothing of the failed requests was stored.
	if l := e.must(200, "GET", "/v1/customers", nil).list(); len(l) != 1 {
		t.Errorf("after failed creates, %d customers, want 1", len(l))
	}
	if ev := e.outbox(); len(ev) != 1 {
		t.Errorf("after failed creates, %d outbox events, want 1", len(ev))
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.must(201, "POST", "/v1/customers", `{"key": "k", "favourite_colour": "blue", "partnerKey": null, "metadata": {"date_of_birth": null}}`).data()
	if c["key"] != "k" {
		t.Errorf("customer = %v", c)
	}
	if m := c["metadata"].(map[string]any); len(m) != 1 || m["date_of_birth"] != nil {
		t.Errorf("metadata = %v, want {date_of_birth: null}", m)
	}
}

func TestBodyOverOneMiBIs413(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := `{"key": "k", "name": "` + strings.Repeat("a", 1<<20) + `"}`
	wantError(t, e.offSpec().call("POST", "/v1/customers", big), 413, "") // name over 255 characters
	wantError(t, e.call("GET", "/v1/customers", big), 413, "")
	if l := e.must(200, "GET", "/v1/customers", nil).list(); len(l) != 0 {
		t.Errorf("oversized create stored something: %v", l)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wantError(t, e.offSpec().callKey("", "GET", "/v1/customers", nil), 401, "")
	wantError(t, e.callKey("rfd_wrong", "GET", "/v1/customers", nil), 401, "")
	wantError(t, e.offSpec().callKey("", "POST", "/v1/customers", `{"key": "k"}`), 401, "")
	wantError(t, e.offSpec().call("GET", "/v1/nowhere", nil), 404, "")
	wantError(t, e.offSpec().call("PATCH", "/v1/customers", nil), 405, "")
}

// 50 simultaneous creates of one key: exactly one 201, the rest 409, one row.
func TestConcurrentCreateOfOneKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"key": "referrer"}`)
	const n = 50
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			r := e.call("POST", "/v1/customers", fmt.Sprintf(`{"key": "same", "email": "same%d@example.com", "referring_customer": {"key": "referrer"}}`, i))
			statuses <- r.Status
		}(i)
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("statuses = %v, want one 201 and %d 409", count, n-1)
	}
	ref := e.must(200, "GET", "/v1/customers/referrer", nil).data()
	if ref["referrals_count"] != float64(1) {
		t.Errorf("referrals_count = %v after one successful referral", ref["referrals_count"])
	}
	if ev := e.outbox(); len(ev) != 2 {
		t.Errorf("%d outbox events, want 2", len(ev))
	}
}

func TestConcurrentReferralsCountExactly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"key": "popular"}`)
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if r := e.call("POST", "/v1/customers", fmt.Sprintf(`{"key": "f%d", "referring_customer": {"key": "popular"}}`, i)); r.Status != 201 {
				t.Errorf("friend %d: %d %s", i, r.Status, r.Raw)
			}
		}(i)
	}
	wg.Wait()
	if c := e.must(200, "GET", "/v1/customers/popular", nil).data(); c["referrals_count"] != float64(n) {
		t.Errorf("referrals_count = %v, want %d", c["referrals_count"], n)
	}
	if m := e.must(200, "GET", "/v1/customers/popular/referrals?limit=250", nil).Body["meta"].(map[string]any); m["total"] != float64(n) {
		t.Errorf("referrals total = %v, want %d", m["total"], n)
	}
}

func TestListPaginationAndFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"key": "root", "email": "root@example.com"}`)
	for i := 0; i < 20; i++ {
		e.must(201, "POST", "/v1/customers", fmt.Sprintf(`{"key": "c%02d", "email": "c%02d@example.com", "referring_customer": {"key": "root"}}`, i, i))
	}
	r := e.must(200, "GET", "/v1/customers", nil)
	meta := r.Body["meta"].(map[string]any)
	if len(r.list()) != 15 || meta["per_page"] != float64(15) || meta["total"] != float64(21) || meta["current_page"] != float64(1) ||
		meta["from"] != float64(1) || meta["to"] != float64(15) {
		t.Errorf("default page: %d items, meta %v", len(r.list()), meta)
	}
	links := r.Body["links"].(map[string]any)
	if links["prev"] != nil || !strings.Contains(fmt.Sprint(links["next"]), "page=2") || !strings.Contains(fmt.Sprint(links["last"]), "page=2") ||
		!strings.HasPrefix(fmt.Sprint(links["first"]), "http://referd.test/v1/customers?") {
		t.Errorf("links = %v", links)
	}
	// Newest first.
	if first := r.list()[0].(map[string]any); first["key"] != "c19" {
		t.Errorf("first listed = %v, want the newest (c19)", first["key"])
	}
	p2 := e.must(200, "GET", "/v1/customers?limit=15&page=2", nil)
	if len(p2.list()) != 6 || p2.Body["meta"].(map[string]any)["from"] != float64(16) {
		t.Errorf("page 2: %d items, meta %v", len(p2.list()), p2.Body["meta"])
	}
	// Parameters in a JSON body, as the SDKs send them, work like the query string.
	viaBody := e.must(200, "GET", "/v1/customers", `{"limit": 5, "page": 1, "refer_status": "non_referred"}`)
	if l := viaBody.list(); len(l) != 1 || l[0].(map[string]any)["key"] != "root" {
		t.Errorf("refer_status=non_referred via body: %s", viaBody.Raw)
	}
	if l := e.must(200, "GET", "/v1/customers?refer_status=referred&limit=250", "[]").list(); len(l) != 20 {
		t.Errorf("refer_status=referred: %d, want 20", len(l))
	}
	if l := e.must(200, "GET", "/v1/customers?email=C07@example.com", nil).list(); len(l) != 1 || l[0].(map[string]any)["key"] != "c07" {
		t.Errorf("email filter: %v", l)
	}
	for _, q := range []string{"limit=0", "limit=251", "limit=x", "page=0", "refer_status=maybe"} {
		wantError(t, e.offSpec().call("GET", "/v1/customers?"+q, nil), 422, strings.SplitN(q, "=", 2)[0])
	}
	wantError(t, e.offSpec().call("GET", "/v1/customers", `{"limit": 1`), 400, "")
}

func TestSearch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"id": "u1", "key": "alice_k", "email": "alice@example.com", "name": "Alice"}`)
	e.must(201, "POST", "/v1/customers", `{"id": "u2", "key": "bob_k", "email": "bob@example.com", "name": "Bobby"}`)
	e.must(201, "POST", "/v1/customers", `{"id": "u3", "key": "b100", "name": "100% Sure"}`)
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"query=BOB", []string{"bob_k"}},
		{"query=example.com", []string{"bob_k", "alice_k"}},
		{"query=u1", []string{"alice_k"}},
		{"query=%25", []string{"b100"}}, // a literal %, not a wildcard
		{"query=a_i", nil},              // a literal _, not a wildcard (it would match "ali")
		{"id=u2", []string{"bob_k"}},
		{"key=alice_k", []string{"alice_k"}},
		{"email=ALICE@example.com", []string{"alice_k"}},
		{"query=nobody", nil},
	} {
		l := e.must(200, "GET", "/v1/customers:search?"+tc.q, nil).list()
		var got []string
		for _, c := range l {
			got = append(got, c.(map[string]any)["key"].(string))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("search %s = %v, want %v", tc.q, got, tc.want)
		}
	}
	if l := e.must(200, "GET", "/v1/customers:search", `{"query": "alice"}`).list(); len(l) != 1 {
		t.Errorf("search via body: %v", l)
	}
}

func TestUpdateCustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"id": "u1", "key": "k1", "email": "a@example.com", "name": "A", "metadata": {"plan": "free", "seats": 1}}`)
	e.must(201, "POST", "/v1/customers", `{"id": "u2", "key": "k2", "email": "b@example.com"}`)

	c := e.must(200, "PUT", "/v1/customers/k1", `{"name": "Jane", "surname": "Smith", "metadata": {"plan": "premium", "seats": null}}`).data()
	if c["name"] != "Jane" || c["surname"] != "Smith" || c["email"] != "a@example.com" {
		t.Errorf("after update: %v", c)
	}
	if m := c["metadata"].(map[string]any); len(m) != 1 || m["plan"] != "premium" {
		t.Errorf("metadata = %v, want {plan: premium} (merged, null removes)", m)
	}
	// The SDK form: PUT /v1/customers {id, update}.
	c = e.must(200, "PUT", "/v1/customers", `{"id": "u1", "update": {"email": null, "key": "k1-new"}}`).data()
	if c["email"] != nil || c["key"] != "k1-new" || c["referral_link"] != "https://acme.test?ref=k1-new" {
		t.Errorf("after SDK update: %v", c)
	}
	// The new key is the referral key now: a friend can use it.
	e.must(201, "POST", "/v1/customers", `{"key": "friend", "referring_customer": {"key": "k1-new"}}`)
	wantError(t, e.call("POST", "/v1/customers", `{"key": "friend2", "referring_customer": {"key": "k1"}}`), 422, "referring_customer.key")

	wantError(t, e.call("PUT", "/v1/customers/u1", `{"email": "b@example.com"}`), 409, "email")
	wantError(t, e.call("PUT", "/v1/customers/u1", `{"key": "k2"}`), 409, "key")
	wantError(t, e.call("PUT", "/v1/customers/u1", `{"email": "nope"}`), 422, "email")
	wantError(t, e.call("PUT", "/v1/customers/ghost", `{"name": "x"}`), 404, "")
	wantError(t, e.offSpec().call("PUT", "/v1/customers", `{"update": {"name": "x"}}`), 422, "id")

	// An update that changes nothing writes no event.
	before := len(e.outbox())
	e.must(200, "PUT", "/v1/customers/u1", `{"name": "Jane"}`)
	e.must(200, "PATCH", "/v1/customers/u1", `{"name": "Jane"}`) // PATCH is PUT
	if after := len(e.outbox()); after != before {
		t.Errorf("no-op update wrote %d events", after-before)
	}
	ev := e.outbox()
	var updates int
	for _, x := range ev {
		if x.Event == "customer.updated" {
			updates++
		}
	}
	if updates != 2 {
		t.Errorf("%d customer.updated events, want 2", updates)
	}
}

func TestDeleteCustomerIsSoft(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"key": "ref"}`)
	e.must(201, "POST", "/v1/customers", `{"key": "gone", "referring_customer": {"key": "ref"}}`)
	d := e.must(200, "DELETE", "/v1/customers/gone", "[]").data()
	if d["status"] != "deleted" || d["key"] != "gone" || d["deleted_at"] == nil {
		t.Errorf("delete answered %v", d)
	}
	g := e.must(200, "GET", "/v1/customers/gone", nil).data()
	if g["status"] != "deleted" {
		t.Errorf("deleted customer reads as %v", g["status"])
	}
	e.must(200, "DELETE", "/v1/customers/gone", nil) // again: same answer, no new event
	if l := e.must(200, "GET", "/v1/customers", nil).list(); len(l) != 1 {
		t.Errorf("list shows %d customers, want 1 (deleted ones hidden)", len(l))
	}
	if l := e.must(200, "GET", "/v1/customers?status=deleted", nil).list(); len(l) != 1 {
		t.Errorf("status=deleted lists %d", len(l))
	}
	// History stays: the referral is still the referrer's.
	if l := e.must(200, "GET", "/v1/customers/ref/referrals", nil).list(); len(l) != 1 {
		t.Errorf("referrals after delete: %d", len(l))
	}
	// A deleted customer refers nobody any more.
	wantError(t, e.call("POST", "/v1/customers", `{"key": "late", "referring_customer": {"key": "gone"}}`), 422, "referring_customer.key")
	// A deleted customer's key and email stay taken.
	wantError(t, e.call("POST", "/v1/customers", `{"key": "gone"}`), 409, "key")
	wantError(t, e.call("DELETE", "/v1/customers/ghost", nil), 404, "")
	var deletes int
	for _, x := range e.outbox() {
		if x.Event == "customer.deleted" {
			deletes++
			if x.Payload["status"] != "deleted" {
				t.Errorf("customer.deleted payload status %v", x.Payload["status"])
			}
		}
	}
	if deletes != 1 {
		t.Errorf("%d customer.deleted events, want 1", deletes)
	}
}

func TestReferralLinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"id": "u1", "key": "alice"}`)
	e.must(201, "POST", "/v1/customers", `{"id": "u2", "key": "bob"}`)

	l := e.must(201, "POST", "/v1/customer_referral_links", `{"customer_key": "alice", "key": "alice-blog", "destination_url": "https://acme.test/pricing"}`).data()
	if l["key"] != "alice-blog" || l["url"] != "https://acme.test/pricing?ref=alice-blog" || l["is_default"] != false {
		t.Errorf("link = %v", l)
	}
	g := e.must(201, "POST", "/v1/customer_referral_links", `{"customer": {"id": "u1"}, "is_additional": true}`).data()
	if g["key"] == "" || g["is_additional"] != true || g["url"] != "https://acme.test?ref="+g["key"].(string) {
		t.Errorf("generated link = %v", g)
	}
	list := e.must(200, "GET", "/v1/customers/u1/referral_links", nil).list()
	if len(list) != 3 || list[0].(map[string]any)["key"] != "alice" || list[0].(map[string]any)["is_default"] != true {
		t.Errorf("links = %v", list)
	}
	c := e.must(200, "GET", "/v1/customers/alice", nil).data()
	if links := c["referral_links"].([]any); len(links) != 3 || links[1] != "https://acme.test/pricing?ref=alice-blog" {
		t.Errorf("customer referral_links = %v", c["referral_links"])
	}
	// A friend arriving through the extra link is alice's referral.
	f := e.must(201, "POST", "/v1/customers", `{"key": "friend", "referring_customer": {"key": "alice-blog"}}`).data()
	if f["referring_customer"].(map[string]any)["key"] != "alice" {
		t.Errorf("friend's referrer = %v", f["referring_customer"])
	}
	// Link keys and customer keys share one namespace.
	wantError(t, e.call("POST", "/v1/customer_referral_links", `{"customer_key": "alice", "key": "bob"}`), 409, "key")
	wantError(t, e.call("POST", "/v1/customers", `{"key": "alice-blog"}`), 409, "key")
	wantError(t, e.call("POST", "/v1/customer_referral_links", `{"customer_key": "ghost"}`), 422, "customer")
	wantError(t, e.offSpec().call("POST", "/v1/customer_referral_links", `{}`), 422, "customer")
	wantError(t, e.call("POST", "/v1/customer_referral_links", `{"customer_key": "alice", "destination_url": "ftp://x"}`), 422, "destination_url")
	wantError(t, e.call("GET", "/v1/customers/ghost/referral_links", nil), 404, "")
}

// A key sees only its program: program B gets 404 for A's customer, an empty list,
// 404 for A's referrals and links, and cannot use A's customer as a referrer.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"id": "a1", "key": "akey", "email": "shared@example.com"}`)
	e.must(201, "POST", "/v1/customers", `{"key": "afriend", "referring_customer": {"key": "akey"}}`)
	e.must(201, "POST", "/v1/customer_referral_links", `{"customer_key": "akey", "key": "alink"}`)

	_, keyB := e.newProgram("Beta", "https://beta.test")
	for _, path := range []string{"/v1/customers/a1", "/v1/customers/akey", "/v1/customers/akey/referrals", "/v1/customers/akey/referral_links"} {
		wantError(t, e.callKey(keyB, "GET", path, nil), 404, "")
	}
	for _, path := range []string{"/v1/customers", "/v1/customers:search?query=a", "/v1/customers?email=shared@example.com"} {
		r := e.callKey(keyB, "GET", path, nil)
		if r.Status != 200 || len(r.list()) != 0 {
			t.Errorf("B %s: %d %s", path, r.Status, r.Raw)
		}
	}
	wantError(t, e.callKey(keyB, "PUT", "/v1/customers/a1", `{"name": "hijack"}`), 404, "")
	wantError(t, e.callKey(keyB, "PUT", "/v1/customers", `{"id": "a1", "update": {"name": "hijack"}}`), 404, "")
	wantError(t, e.callKey(keyB, "DELETE", "/v1/customers/a1", nil), 404, "")
	wantError(t, e.callKey(keyB, "POST", "/v1/customers", `{"key": "b1", "referring_customer": {"key": "akey"}}`), 422, "referring_customer.key")
	wantError(t, e.callKey(keyB, "POST", "/v1/customers", `{"key": "b1", "referring_customer": {"key": "alink"}}`), 422, "referring_customer.key")
	wantError(t, e.callKey(keyB, "POST", "/v1/customer_referral_links", `{"customer_key": "akey"}`), 422, "customer")
	// The same id, key and email are free in another program.
	e.callKey(keyB, "POST", "/v1/customers", `{"id": "a1", "key": "akey", "email": "shared@example.com"}`)
	if r := e.callKey(keyB, "GET", "/v1/customers/akey", nil); r.Status != http.StatusOK || r.data()["referrals_count"] != float64(0) {
		t.Errorf("B's own akey: %d %s", r.Status, r.Raw)
	}
	if c := e.must(200, "GET", "/v1/customers/a1", nil).data(); c["name"] != nil || c["status"] != "active" || c["referrals_count"] != float64(1) {
		t.Errorf("A's customer changed through B: %v", c)
	}
}
