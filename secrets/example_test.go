package secrets_test

import (
	"fmt"
	"strings"

	"github.com/referd/referd/secrets"
)

// A value is sealed for the place it is stored in, and opens only there.
func ExampleKey_Seal() {
	key, err := secrets.ParseKey("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=") // openssl rand -base64 32
	if err != nil {
		panic(err)
	}
	sealed, _ := key.Seal([]byte("sk_test_4eC39HqLyjWDarjtT1zdp7dc"), "integrations.api_key:1:stripe")
	fmt.Println(strings.HasPrefix(sealed, "v1:"))

	plain, err := key.Open(sealed, "integrations.api_key:1:stripe")
	fmt.Println(string(plain), err)

	_, err = key.Open(sealed, "integrations.api_key:2:stripe")
	fmt.Println(err == secrets.ErrOpen)
	// Output:
	// true
	// sk_test_4eC39HqLyjWDarjtT1zdp7dc <nil>
	// true
}
