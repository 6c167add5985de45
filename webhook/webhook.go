// Package webhook is the HTTP side of referd's outgoing webhooks, following
// Standard Webhooks (https://www.standardwebhooks.com): it makes and uses signing
// secrets, sends one signed delivery attempt through a client that refuses private
// and metadata addresses at dial time, and says what the attempt means (succeeded,
// retry, or gone) and when to try again. It knows nothing of the database or the
// queue: the dispatcher that owns those calls it.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// secretPrefix marks a Standard Webhooks symmetric secret; the rest is base64.
const secretPrefix = "whsec_"

// ErrInvalidSecret is returned when a secret is not "whsec_" followed by
// non-empty standard base64.
var ErrInvalidSecret = errors.New("webhook: invalid secret")

// NewSecret returns a new signing secret: "whsec_" and 24 random bytes in standard
// base64, the size Standard Webhooks recommends at its lower bound and Svix uses.
func NewSecret() (string, error) {
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook: NewSecret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// secretKey decodes the HMAC key of a secret. The prefix is required, unlike in
// the reference library: every secret here was made by NewSecret, so a missing
// prefix means a bug or a pasted value of something else.
func secretKey(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %q prefix", ErrInvalidSecret, secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("%w: not base64 after %q", ErrInvalidSecret, secretPrefix)
	}
	return key, nil
}

// Sign returns the Standard Webhooks signature "v1,<base64 HMAC-SHA256>" of
// "msgID.unix_seconds.body", keyed by the secret.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// PartneroSignature returns the Signature header of Partnero's scheme: the
// lower-case hex HMAC-SHA256 of body, keyed by the secret's text exactly as the API
// shows it ("whsec_..." as UTF-8 bytes, not base64-decoded as Sign decodes it).
// Receivers written for Partnero, such as its n8n trigger, check this header alone.
func PartneroSignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Signatures returns the webhook-signature header value: one signature per secret,
// separated by single spaces. During a rotation the old and the new secret both
// sign, so a receiver holding either one verifies the message.
func Signatures(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", fmt.Errorf("%w: no secret to sign with", ErrInvalidSecret)
	}
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sig, err := Sign(s, msgID, ts, body)
		if err != nil {
			return "", err
		}
		sigs[i] = sig
	}
	return strings.Join(sigs, " "), nil
}
