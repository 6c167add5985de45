// Package secrets encrypts the few secrets referd must be able to read back (a
// billing provider's API key) with REFERD_SECRET_KEY, so that a copy of the database
// alone does not give them away.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// version prefixes every sealed value. A value names the format it was written in,
// so that a later key rotation (a key id after the version) or a new cipher can tell
// old values from new ones without a migration.
const version = "v1:"

// ErrOpen is returned by Open for a value it cannot decrypt: written with another
// key or for another context, tampered with, or not a sealed value at all.
var ErrOpen = errors.New("secrets: cannot decrypt the value (another REFERD_SECRET_KEY, or tampered with)")

// Key encrypts and decrypts with one AES-256-GCM key. A nil *Key is "no key
// configured": Seal and Open fail with ErrNoKey.
type Key struct {
	aead cipher.AEAD
}

// ErrNoKey is returned by a nil Key.
var ErrNoKey = errors.New("secrets: REFERD_SECRET_KEY is not set")

// ParseKey reads REFERD_SECRET_KEY: 32 bytes in base64, standard or URL alphabet,
// padded or not. `openssl rand -base64 32` makes one.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("REFERD_SECRET_KEY is not base64: want 32 random bytes in base64 (openssl rand -base64 32)")
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("REFERD_SECRET_KEY is %d bytes: want 32 random bytes in base64 (openssl rand -base64 32)", len(raw))
	}
	return NewKey(raw)
}

// NewKey returns a Key of 32 raw bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("secrets.NewKey: %d bytes, want %d", len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("secrets.NewKey: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets.NewKey: %w", err)
	}
	return &Key{aead: aead}, nil
}

// Seal encrypts plaintext for context (say, the table, row and column it is stored
// in): Open must be given the same context, so a sealed value copied to another row
// does not decrypt there. The result is text: "v1:" and the base64 (URL alphabet,
// unpadded) of a random 12-byte nonce followed by the ciphertext and its tag.
func (k *Key) Seal(plaintext []byte, context string) (string, error) {
	if k == nil {
		return "", ErrNoKey
	}
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets.Seal: %w", err)
	}
	out := k.aead.Seal(nonce, nonce, plaintext, []byte(context))
	return version + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value of Seal given the same context.
func (k *Key) Open(sealed string, context string) ([]byte, error) {
	if k == nil {
		return nil, ErrNoKey
	}
	rest, ok := strings.CutPrefix(sealed, version)
	if !ok {
		return nil, ErrOpen
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) < k.aead.NonceSize()+k.aead.Overhead() {
		return nil, ErrOpen
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
