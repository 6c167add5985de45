package referral

import (
	"crypto/rand"
	"crypto/sha256"
	"strings"
)

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// RandomString returns n characters from [a-z0-9], uniformly, from crypto/rand.
func RandomString(n int) string {
	var sb strings.Builder
	sb.Grow(n)
	buf := make([]byte, n+n/2)
	for sb.Len() < n {
		rand.Read(buf)
		for _, b := range buf {
			if b < 252 && sb.Len() < n { // 252 = 7*36: no modulo bias
				sb.WriteByte(alphabet[b%36])
			}
		}
	}
	return sb.String()
}

// APIKeyPrefix starts every API key, so a leaked key is recognisable in logs and scanners.
const APIKeyPrefix = "rfd_"

// NewAPIKey returns a new secret API key (shown once), its SHA-256 hash (stored) and a
// short non-secret prefix (stored, to tell keys apart). 40 random characters carry
// about 206 bits, so a fast hash is enough: nothing here can be brute-forced.
func NewAPIKey() (key string, hash []byte, prefix string) {
	key = APIKeyPrefix + RandomString(40)
	return key, HashAPIKey(key), key[:len(APIKeyPrefix)+6]
}

// HashAPIKey is the stored form of an API key.
func HashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

func newProgramID() string   { return RandomString(12) }
func newCustomerID() string  { return "cus_" + RandomString(16) }
func newReferralKey() string { return RandomString(10) }
