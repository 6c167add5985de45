package main

// Signed Stripe invoice.paid events, shared by the ingest-stripe scenario and
// the -e2e stages.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
)

// loadFriends is how many referred friends the events name: event n pays for
// friend n % loadFriends, whose email load<i>@load.test attributes the payment
// (drain.sh and e2e.sh create friends with these emails).
const loadFriends = 1024

// invoicePaid returns the n-th Stripe invoice.paid event of a run, created at
// unix time now, and its Stripe-Signature header for secret. The event id is
// evt_<eventPrefix>_<n> and the invoice id in_<eventPrefix>_<n>, so referd
// records the sale under invoiceKey(eventPrefix, n). The Stripe customer is
// cus_<customerPrefix>_<i> with customer_email load<i>@load.test for friend
// i = n % loadFriends; the amount paid is 100 + n % 49901 cents.
func invoicePaid(eventPrefix, customerPrefix, secret string, n, now int64) (body []byte, signature string) {
	friend := n % loadFriends
	body = fmt.Appendf(nil, `{"id":"evt_%s_%d","object":"event","api_version":"2023-10-16","created":%d,"livemode":false,`+
		`"type":"invoice.paid","data":{"object":{"id":"in_%s_%d","object":"invoice","amount_paid":%d,"currency":"usd",`+
		`"customer":"cus_%s_%d","customer_email":"load%d@load.test","subscription":null,"metadata":{}}}}`,
		eventPrefix, n, now, eventPrefix, n, 100+(n%49901), customerPrefix, friend, friend)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", now)
	mac.Write(body)
	return body, "t=" + strconv.FormatInt(now, 10) + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// invoiceKey is the transaction key referd gives the sale of invoicePaid's
// n-th event: "stripe:" and the invoice id. transaction.created webhooks carry
// it as data.key.
func invoiceKey(eventPrefix string, n int64) string {
	return "stripe:in_" + eventPrefix + "_" + strconv.FormatInt(n, 10)
}

// newStripeRequest builds the POST of a signed Stripe event to
// base/ingest/stripe/<program>.
func newStripeRequest(ctx context.Context, base, program string, body []byte, signature string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/ingest/stripe/"+program, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signature)
	return req, nil
}
