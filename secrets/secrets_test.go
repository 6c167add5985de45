package secrets_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/referd/referd/secrets"
)

func newKey(t *testing.T, b byte) *secrets.Key {
	t.Helper()
	k, err := secrets.ParseKey(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	k := newKey(t, 1)
	for _, plain := range []string{"sk_test_4eC39HqLyjWDarjtT1zdp7dc", "", strings.Repeat("x", 1000)} {
		sealed, err := k.Seal([]byte(plain), "integrations:1:stripe")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, "v1:") || (plain != "" && strings.Contains(sealed, plain)) {
			t.Errorf("sealed %q = %q: want v1: and no plaintext", plain, sealed)
		}
		again, _ := k.Seal([]byte(plain), "integrations:1:stripe")
		if again == sealed {
			t.Errorf("two seals of %q are equal: the nonce is not random", plain)
		}
		got, err := k.Open(sealed, "integrations:1:stripe")
		if err != nil || string(got) != plain {
			t.Errorf("Open = %q, %v; want %q", got, err, plain)
		}
	}
}

func TestOpenFails(t *testing.T) {
	t.Parallel()
	k := newKey(t, 1)
	sealed, err := k.Seal([]byte("sk_test_secret"), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := map[string]struct {
		key     *secrets.Key
		sealed  string
		context string
	}{
		"wrong key":          {newKey(t, 2), sealed, "ctx"},
		"other context":      {k, sealed, "ctx2"},
		"nonce tampered":     {k, flip(sealed, 5), "ctx"},
		"ciphertext changed": {k, flip(sealed, len(sealed)-10), "ctx"},
		"truncated":          {k, sealed[:len(sealed)-4], "ctx"},
		"no version":         {k, strings.TrimPrefix(sealed, "v1:"), "ctx"},
		"other version":      {k, "v2:" + strings.TrimPrefix(sealed, "v1:"), "ctx"},
		"not base64":         {k, "v1:!!!", "ctx"},
		"empty":              {k, "", "ctx"},
	}
	for name, c := range cases {
		if got, err := c.key.Open(c.sealed, c.context); !errors.Is(err, secrets.ErrOpen) {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", name, got, err)
		}
	}
	var none *secrets.Key
	if _, err := none.Seal([]byte("x"), ""); !errors.Is(err, secrets.ErrNoKey) {
		t.Errorf("nil Key Seal: %v", err)
	}
	if _, err := none.Open(sealed, "ctx"); !errors.Is(err, secrets.ErrNoKey) {
		t.Errorf("nil Key Open: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(250 - i) // bytes whose base64 differs between the alphabets
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		s := enc.EncodeToString(raw)
		k, err := secrets.ParseKey(s + "\n")
		if err != nil {
			t.Errorf("ParseKey(%q): %v", s, err)
			continue
		}
		want, _ := secrets.NewKey(raw)
		sealed, _ := want.Seal([]byte("x"), "")
		if got, err := k.Open(sealed, ""); err != nil || string(got) != "x" {
			t.Errorf("ParseKey(%q) is another key: %v", s, err)
		}
	}
	for _, bad := range []string{"", "c2hvcnQ=", base64.StdEncoding.EncodeToString(make([]byte, 16)),
		base64.StdEncoding.EncodeToString(make([]byte, 31)), base64.StdEncoding.EncodeToString(make([]byte, 33)),
		base64.StdEncoding.EncodeToString(make([]byte, 64)), "not base64 at all!", strings.Repeat("z", 43) + "#"} {
		if _, err := secrets.ParseKey(bad); err == nil || !strings.Contains(err.Error(), "REFERD_SECRET_KEY") {
			t.Errorf("ParseKey(%q) = %v, want an error naming REFERD_SECRET_KEY", bad, err)
		}
	}
}

// Open reads what the database holds: whatever it is given, it must not panic, and
// only what Seal wrote opens.
func FuzzOpen(f *testing.F) {
	k, _ := secrets.NewKey(bytes.Repeat([]byte{7}, 32))
	sealed, _ := k.Seal([]byte("sk_test_x"), "c")
	f.Add(sealed)
	f.Add("v1:")
	f.Add("v1:AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := k.Open(s, "c")
		if err == nil && s != sealed && string(got) != "sk_test_x" {
			t.Errorf("Open(%q) = %q: opened what Seal did not write", s, got)
		}
	})
}
