package store_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"testing"

	"github.com/referd/referd/store"
)

func randomSuffix(t *testing.T, _ *store.DB) string {
	b := make([]byte, 5)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func replaceDatabase(t *testing.T, raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func make32(b byte) []byte {
	out := make([]byte, 32)
	for i := range out {
		out[i] = b
	}
	return out
}

func conflictField(err error) (string, bool) {
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		return ce.Field, true
	}
	return "", false
}
