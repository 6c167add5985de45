// Package money does exact money arithmetic for the referral ledger.
//
// Inside referd an amount is an int64 count of minor units of its units: cents
// for "usd" (scale 2), yen for "jpy" (scale 0), fils for "kwd" (scale 3). A
// float64 never holds money, because 0.1 has no exact binary form and a ledger
// that adds floats drifts by fractions of a cent. The API speaks major units as
// JSON numbers (100 is 100.00 USD); ParseMajor reads the exact decimal text of a
// json.Number and FormatMajor writes one back, and the two round-trip exactly.
//
// Amounts are kept within ±1e15 minor units (10 trillion dollars) so that sums
// of many amounts still fit in an int64 without overflow checks at every add.
//
// # Rounding
//
// There is a single rounding rule: a percent share (PercentOf) and a
// proportional reversal (Prorate) are rounded half away from zero to the minor
// unit. 12.5% of 0.99 USD is 12.375 cents, which becomes 12; 50% of 0.01 USD is
// half a cent, which becomes 1 cent; -0.5 cents becomes -1. Nothing else rounds:
// ParseMajor refuses an amount with more decimals than its currency has.
//
// A partial refund reverses the same share of a percent reward as the share of
// the purchase refunded. The reversal is always computed on the cumulative
// refunded amount, never per refund:
//
//	reversedSoFar := Prorate(reward, refundedSoFar, purchase)
//	thisReversal := reversedSoFar - previouslyReversed
//
// Rounding each refund on its own would drift: a 1.25 USD reward on a 10.00 USD
// purchase refunded in two halves would reverse 63 + 63 = 126 cents, one more
// than was ever rewarded. On cumulative amounts the first half reverses
// Prorate(125, 500, 1000) = 63 and the second reverses 125 - 63 = 62, since
// Prorate(125, 1000, 1000) is 125. Because Prorate(total, whole, whole) ==
// total exactly, a full refund, in however many parts, reverses exactly the
// whole reward and never more.
package money

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/text/currency"
)

const (
	// maxMinor bounds every parsed amount, in minor units. It leaves a factor of
	// about 9000 of headroom below math.MaxInt64 for sums of amounts.
	maxMinor = 1_000_000_000_000_000 // 1e15
	// maxMinorDigits is the number of decimal digits of maxMinor; a result with
	// more digits is out of range before any arithmetic is done.
	maxMinorDigits = 16
	// maxNumberLen bounds the text ParseMajor reads: no real amount needs more,
	// and a bound keeps hostile input cheap to refuse.
	maxNumberLen = 40
	// maxExponent bounds a JSON number's exponent. No client writes an amount
	// with a larger one, and refusing it outright means no exponent can blow
	// up the work done ("1e999999999" as a big.Int is a billion digits).
	maxExponent = 30
	// maxScale is the largest scale ParseMajor and FormatMajor accept; ISO 4217
	// currencies use at most 4 decimals, and 10^18 still fits in an int64.
	maxScale = 18
	// percentDecimals is how many decimals a percent given to PercentOf may
	// have; percentDenominator is 100% in those units.
	percentDecimals    = 4
	percentDenominator = 100 * 10_000
	// nonMoneyScale is the scale of the "credit" and "percent" units.
	nonMoneyScale = 2
)

// Non-money units. They are not ISO 4217 codes, so IsCurrency reports false.
const (
	unitCredit  = "credit"
	unitPercent = "percent"
)

// scales caches the scale of each ISO 4217 code already seen, keyed by the
// lower-case code. Only valid codes are stored, so the cache is bounded by the
// size of ISO 4217 however many unknown codes clients send.
var scales sync.Map // string -> int

// Scale returns the number of decimals of the minor unit of units: 2 for
// "usd", 0 for "jpy", 3 for "kwd", and 2 for the non-money units "credit" and
// "percent". Units are matched case-insensitively ("JPY" is "jpy"); unknown
// units are an error.
func Scale(units string) (int, error) {
	_, scale, _, err := lookup(units)
	return scale, err
}

// IsCurrency reports whether units is an ISO 4217 currency code (in any case).
// It is false for the non-money units "credit" and "percent" and for anything
// unknown.
func IsCurrency(units string) bool {
	_, _, isCurrency, err := lookup(units)
	return err == nil && isCurrency
}

// Normalize returns units in the canonical lower case the ledger stores ("USD"
// becomes "usd"), or an error if units is empty or not a known unit.
func Normalize(units string) (string, error) {
	lower, _, _, err := lookup(units)
	return lower, err
}

// lookup validates units and returns its lower-case form, its scale and
// whether it is an ISO 4217 currency.
func lookup(units string) (lower string, scale int, isCurrency bool, err error) {
	if units == "" {
		return "", 0, false, errors.New("units are required")
	}
	lower, ok := lowerASCII(units)
	if !ok {
		// Only ASCII letters: strings.ToUpper would turn "uſd" into "USD".
		return "", 0, false, fmt.Errorf("unknown units %q", truncate(units))
	}
	switch lower {
	case unitCredit, unitPercent:
		return lower, nonMoneyScale, false, nil
	}
	if v, ok := scales.Load(lower); ok {
		return lower, v.(int), true, nil
	}
	if len(lower) != 3 {
		return "", 0, false, fmt.Errorf("unknown units %q: not a currency code, %q or %q", lower, unitCredit, unitPercent)
	}
	unit, err := currency.ParseISO(strings.ToUpper(lower))
	// ParseISO returns the zero Unit for "XXX", ISO 4217's "no currency".
	if err != nil || unit == (currency.Unit{}) {
		return "", 0, false, fmt.Errorf("unknown currency %q", lower)
	}
	scale, _ = currency.Standard.Rounding(unit)
	scales.Store(lower, scale)
	return lower, scale, true, nil
}

// lowerASCII lower-cases s if it consists of at most 7 ASCII letters (the
// longest unit is "percent"). It allocates only when s has an upper-case letter.
func lowerASCII(s string) (string, bool) {
	if len(s) > len(unitPercent) {
		return "", false
	}
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z':
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			return "", false
		}
	}
	if !upper {
		return s, true
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b), true
}

// truncate shortens s for an error message, so a hostile megabyte of input is
// not echoed back.
func truncate(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// ParseMajor converts the exact decimal text of a JSON number in major units
// into minor units of a currency with the given scale: ParseMajor("10.5", 2)
// is 1050 and ParseMajor("1e2", 2) is 10000.
//
// It accepts exactly the JSON number grammar encoding/json produces for a
// json.Number: an optional '-', an integer part without leading zeros, an
// optional fraction and an optional exponent. It refuses, with an error, empty
// text, text over 40 characters, anything else that is not a JSON number
// (".5", "1.", "+1", "NaN"), exponents beyond ±30, more significant decimals
// than scale allows ("0.015" at scale 2), and results beyond ±1e15 minor units.
// Trailing zeros are fine: "10.50" is 1050 at scale 2. Scale must be in
// [0, 18].
//
// It works on the digits of the text, never through a float or big number,
// and allocates nothing unless it fails.
func ParseMajor(num string, scale int) (int64, error) {
	if scale < 0 || scale > maxScale {
		return 0, fmt.Errorf("scale %d is outside 0..%d", scale, maxScale)
	}
	if num == "" {
		return 0, errors.New("amount is empty")
	}
	if len(num) > maxNumberLen {
		return 0, fmt.Errorf("amount is longer than %d characters", maxNumberLen)
	}
	s := num
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	// Integer part: "0" or a non-zero digit and more digits.
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart := s[:i]
	if intPart == "" || (len(intPart) > 1 && intPart[0] == '0') {
		return 0, notJSONNumber(num)
	}
	s = s[i:]
	// Fraction: '.' and at least one digit.
	var frac string
	if s != "" && s[0] == '.' {
		j := 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		frac = s[1:j]
		if frac == "" {
			return 0, notJSONNumber(num)
		}
		s = s[j:]
	}
	// Exponent: 'e' or 'E', an optional sign and at least one digit. Leading
	// zeros are valid JSON ("1e007"), so the digits are read with a cap
	// instead of by length.
	exp := 0
	if s != "" && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		expNeg := false
		if s != "" && (s[0] == '+' || s[0] == '-') {
			expNeg = s[0] == '-'
			s = s[1:]
		}
		j := 0
		for j < len(s) && isDigit(s[j]) {
			if exp <= maxExponent { // caps exp below 310: no overflow
				exp = exp*10 + int(s[j]-'0')
			}
			j++
		}
		if j == 0 || j != len(s) {
			return 0, notJSONNumber(num)
		}
		s = s[j:]
		if exp > maxExponent {
			return 0, fmt.Errorf("amount %q has an exponent beyond ±%d", num, maxExponent)
		}
		if expNeg {
			exp = -exp
		}
	}
	if s != "" {
		return 0, notJSONNumber(num)
	}

	// The digits of intPart followed by frac form an integer D, and the result
	// is D * 10^shift minor units.
	n := len(intPart) + len(frac)
	digit := func(k int) byte {
		if k < len(intPart) {
			return intPart[k]
		}
		return frac[k-len(intPart)]
	}
	shift := exp - len(frac) + scale
	first := 0 // first significant digit
	for first < n && digit(first) == '0' {
		first++
	}
	if first == n {
		return 0, nil // zero, "-0" included, whatever its exponent
	}
	last := n // digits [first, last) are used, then shift zeros appended
	if shift < 0 {
		// The last -shift digits are below the minor unit; they must be zeros.
		if -shift >= n-first {
			return 0, tooManyDecimals(num, scale)
		}
		last = n + shift
		for k := last; k < n; k++ {
			if digit(k) != '0' {
				return 0, tooManyDecimals(num, scale)
			}
		}
		shift = 0
	}
	if last-first+shift > maxMinorDigits {
		return 0, outOfRange(num)
	}
	var v uint64 // at most 16 digits: fits with room to spare
	for k := first; k < last; k++ {
		v = v*10 + uint64(digit(k)-'0')
	}
	for ; shift > 0; shift-- {
		v *= 10
	}
	if v > maxMinor {
		return 0, outOfRange(num)
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// The errors are built only on failure, so a successful parse does not
// allocate.

func notJSONNumber(num string) error {
	return fmt.Errorf("amount %q is not a JSON number", num)
}

func tooManyDecimals(num string, scale int) error {
	return fmt.Errorf("amount %q has too many decimals: at most %d decimals", num, scale)
}

func outOfRange(num string) error {
	return fmt.Errorf("amount %q is out of range", num)
}

// FormatMajor returns the shortest exact decimal text, in major units, of minor
// units of a currency with the given scale: FormatMajor(1050, 2) is "10.5",
// FormatMajor(1000, 2) is "10" and FormatMajor(5, 2) is "0.05". It never uses
// an exponent, and ParseMajor(string(FormatMajor(m, s)), s) == m for every m
// within ±1e15.
//
// Scale must be in [0, 18]; FormatMajor panics otherwise, since a scale comes
// from Scale and anything else is a programming error.
func FormatMajor(minor int64, scale int) json.Number {
	if scale < 0 || scale > maxScale {
		panic(fmt.Sprintf("money: FormatMajor scale %d is outside 0..%d", scale, maxScale))
	}
	u := uint64(minor)
	if minor < 0 {
		u = -u // two's complement: right for math.MinInt64 too
	}
	// Digits of u, padded with leading zeros to at least scale+1 digits so
	// there is always an integer part.
	var digits [24]byte // 20 digits of a uint64 or 19 of padding
	d := strconv.AppendUint(digits[:0], u, 10)
	if pad := scale + 1 - len(d); pad > 0 {
		d = d[:len(d)+pad]
		copy(d[pad:], d)
		for i := 0; i < pad; i++ {
			d[i] = '0'
		}
	}
	intPart, frac := d[:len(d)-scale], d[len(d)-scale:]
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}

	var out [48]byte
	b := out[:0]
	if minor < 0 {
		b = append(b, '-')
	}
	b = append(b, intPart...)
	if len(frac) > 0 {
		b = append(b, '.')
		b = append(b, frac...)
	}
	return json.Number(b)
}

// PercentOf returns percent percent of minor, rounded half away from zero to
// the minor unit: PercentOf(1000, "12.5") is 125 and PercentOf(999, "50") is
// 500 (499.5 rounds away from zero). Percent is the exact decimal text of a
// JSON number with at most 4 decimals and must be greater than 0 and at most
// 100, so the result is never larger in magnitude than minor.
func PercentOf(minor int64, percent string) (int64, error) {
	p, err := ParseMajor(percent, percentDecimals)
	if err != nil {
		return 0, fmt.Errorf("percent: %w", err)
	}
	if p <= 0 || p > percentDenominator {
		return 0, fmt.Errorf("percent %q must be greater than 0 and at most 100", percent)
	}
	return mulDivRound(minor, uint64(p), percentDenominator), nil
}

// Prorate returns total * part / whole rounded half away from zero to the
// minor unit: the share of total that part is of whole. It is how a partial
// refund reverses the same share of a percent reward; see the package
// documentation for why it must be given cumulative amounts.
//
// Part is clamped to [0, whole], so Prorate(total, whole, whole) == total
// exactly and the result is never larger in magnitude than total. The product
// is computed in 128 bits, so no int64 inputs overflow. Whole must be greater
// than zero: Prorate panics otherwise, because a zero or negative whole is a
// programming error (there is nothing to take a share of), not bad input.
func Prorate(total, part, whole int64) int64 {
	if whole <= 0 {
		panic(fmt.Sprintf("money: Prorate whole %d is not positive", whole))
	}
	part = max(0, min(part, whole))
	return mulDivRound(total, uint64(part), uint64(whole))
}

// mulDivRound returns x * y / d rounded half away from zero. It requires
// d > 0 and y <= d; then |x * y| < 2^64 * d, so the 128-bit quotient fits in
// 64 bits (bits.Div64 would panic otherwise) and |result| <= |x|.
func mulDivRound(x int64, y, d uint64) int64 {
	u := uint64(x)
	if x < 0 {
		u = -u
	}
	hi, lo := bits.Mul64(u, y)
	q, r := bits.Div64(hi, lo, d)
	// Round the magnitude half up (r/d >= 1/2), which is half away from zero
	// once the sign is put back. q+1 cannot overflow: r > 0 means y < d, so
	// q < u.
	if r >= d-r {
		q++
	}
	if x < 0 {
		return -int64(q) // q <= 2^63: int64(2^63) negates back to math.MinInt64
	}
	return int64(q)
}
