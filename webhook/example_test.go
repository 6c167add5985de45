package webhook_test

import (
	"fmt"
	"time"

	"github.com/referd/referd/webhook"
)

// The example message of the Standard Webhooks spec.
func ExampleSign() {
	sig, err := webhook.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	fmt.Println(sig, err)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= <nil>
}

// Partnero's Signature header: hex HMAC-SHA256 of the raw body, keyed by the
// secret's text as the API shows it (the same value as
// `printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET"`).
func ExamplePartneroSignature() {
	fmt.Println(webhook.PartneroSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", []byte(`{"test": 2432232314}`)))
	// Output: 80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c
}

func ExampleRetryDelay() {
	schedule, _ := webhook.ParseSchedule("5s,5m,30m")
	noJitter := func(time.Duration) time.Duration { return 0 }
	asked := &webhook.RetryError{Delay: time.Hour, Err: fmt.Errorf("HTTP 503")}
	for attempt := range 4 {
		fmt.Println(webhook.RetryDelay(schedule, attempt, nil, noJitter))
	}
	fmt.Println(webhook.RetryDelay(schedule, 0, asked, noJitter))
	// Output:
	// 5s
	// 5m0s
	// 30m0s
	// 30m0s
	// 1h0m0s
}
