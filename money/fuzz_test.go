package money

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

// fuzzScales are the scales FuzzParseMajor picks from: JPY, USD, KWD, CLF and
// PercentOf's percent.
var fuzzScales = []int{0, 2, 3, 4}

// FuzzParseMajor checks that ParseMajor never panics, that whatever it accepts
// is a JSON number encoding/json would hand over as a json.Number, in range,
// and round-trips through FormatMajor, and that it agrees with an exact
// big.Rat reading of the same text.
func FuzzParseMajor(f *testing.F) {
	for _, s := range []string{
		"10.5", "10.50", "1e2", "1E+2", "1.5e-1", "0.015", "5000", "1.234",
		"0", "-0", "-0.0", "0e-30", "00.10", "01", "1.", ".5", "-.5", "+1",
		"1e", "1e+", "1e-", "e1", "-", "NaN", "Infinity", "-Infinity", "",
		" 1", "1 ", "0x10", "1_000", "١",
		"1e999999999", "1e-999999999", "1e30", "1e31", "1e-30", "1e-31",
		"1e0000000000000000000000000000000002",
		"0.0000000000000000000000000001e28",
		"10000000000000", "10000000000000.01", "-10000000000000",
		"9223372036854775807", "-9223372036854775808", "18446744073709551616",
		strings.Repeat("9", 40), strings.Repeat("9", 41), strings.Repeat("1", 1000),
		"0." + strings.Repeat("0", 37) + "1",
	} {
		for i := range fuzzScales {
			f.Add(s, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, num string, scaleIndex uint8) {
		scale := fuzzScales[int(scaleIndex)%len(fuzzScales)]
		got, err := ParseMajor(num, scale)
		want, wantOK := parseOracle(num, scale)
		if err != nil {
			if got != 0 {
				t.Fatalf("ParseMajor(%q, %d) = %d with error %v; want 0", num, scale, got, err)
			}
			if wantOK {
				t.Fatalf("ParseMajor(%q, %d): %v; want %d", num, scale, err, want)
			}
			return
		}
		if !wantOK || got != want {
			t.Fatalf("ParseMajor(%q, %d) = %d; the oracle says %d, %v", num, scale, got, want, wantOK)
		}
		if got > maxMinor || got < -maxMinor {
			t.Fatalf("ParseMajor(%q, %d) = %d: beyond ±1e15", num, scale, got)
		}
		text := FormatMajor(got, scale)
		back, err := ParseMajor(string(text), scale)
		if err != nil || back != got {
			t.Fatalf("ParseMajor(FormatMajor(%d, %d) = %q) = %d, %v; want %d", got, scale, text, back, err, got)
		}
		var n json.Number
		if err := json.Unmarshal([]byte(text), &n); err != nil || string(n) != string(text) {
			t.Fatalf("FormatMajor(%d, %d) = %q is not a JSON number: %v", got, scale, text, err)
		}
	})
}

// parseOracle reads num the slow, obvious way: is it a JSON number as
// encoding/json would decode into a json.Number, within the length and
// exponent bounds, and is its exact value times 10^scale an integer within
// ±1e15?
func parseOracle(num string, scale int) (int64, bool) {
	if num == "" || len(num) > maxNumberLen {
		return 0, false
	}
	// A bare JSON number starts with '-' or a digit and ends with a digit;
	// json.Valid checks the rest (but would also allow surrounding space).
	if !(num[0] == '-' || isDigit(num[0])) || !isDigit(num[len(num)-1]) || !json.Valid([]byte(num)) {
		return 0, false
	}
	var n json.Number
	if err := json.Unmarshal([]byte(num), &n); err != nil || string(n) != num {
		return 0, false
	}
	if i := strings.IndexAny(num, "eE"); i >= 0 {
		exp := strings.TrimLeft(strings.TrimLeft(num[i+1:], "+-"), "0")
		if len(exp) > 2 {
			return 0, false
		}
		if e, _ := strconv.Atoi("0" + exp); e > maxExponent {
			return 0, false
		}
	}
	r, ok := new(big.Rat).SetString(num) // safe now: |exponent| <= 30
	if !ok {
		return 0, false
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !r.IsInt() || r.Num().CmpAbs(big.NewInt(maxMinor)) > 0 {
		return 0, false
	}
	return r.Num().Int64(), true
}

// FuzzProrate checks Prorate against an exact big.Int computation of
// round-half-away-from-zero(total * clamp(part) / whole), and that it panics
// exactly when whole is not positive.
func FuzzProrate(f *testing.F) {
	for _, seed := range [][3]int64{
		{125, 500, 1000}, {125, 1000, 1000}, {-125, 500, 1000}, {125, 0, 1000},
		{125, -1, 1000}, {125, 1001, 1000}, {1, 1, 2}, {1, 1, 3}, {0, 0, 1},
		{125, 500, 0}, {125, 500, -1}, {1e15, 1e15 - 1, 1e15}, {1e15 - 1, 5e14, 1e15},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{math.MinInt64, math.MaxInt64 - 1, math.MaxInt64},
		{math.MinInt64, 1, 2}, {math.MaxInt64, 1, 2}, {math.MinInt64, 0, math.MinInt64},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, total, part, whole int64) {
		if whole <= 0 {
			defer func() {
				if recover() == nil {
					t.Fatalf("Prorate(%d, %d, %d) did not panic", total, part, whole)
				}
			}()
			Prorate(total, part, whole)
			return
		}
		got := Prorate(total, part, whole)
		clamped := max(0, min(part, whole))
		if want := roundHalfAwayOracle(big.NewInt(total), big.NewInt(clamped), big.NewInt(whole)); got != want {
			t.Fatalf("Prorate(%d, %d, %d) = %d; want %d", total, part, whole, got, want)
		}
		if abs(got) > abs(total) {
			t.Fatalf("Prorate(%d, %d, %d) = %d: larger than the total", total, part, whole, got)
		}
		if clamped == whole && got != total {
			t.Fatalf("Prorate(%d, %d, %d) = %d; want exactly the total", total, part, whole, got)
		}
	})
}

// FuzzPercentOf checks PercentOf against an exact big.Rat computation.
func FuzzPercentOf(f *testing.F) {
	for _, seed := range []struct {
		minor   int64
		percent string
	}{
		{1000, "12.5"}, {999, "50"}, {1, "50"}, {1, "49"}, {-999, "50"}, {1000, "100"},
		{1000, "0"}, {1000, "100.0001"}, {1000, "0.00001"}, {1000, "1e2"},
		{math.MaxInt64, "50"}, {math.MinInt64, "100"}, {math.MinInt64, "99.9999"},
	} {
		f.Add(seed.minor, seed.percent)
	}
	f.Fuzz(func(t *testing.T, minor int64, percent string) {
		got, err := PercentOf(minor, percent)
		p, ok := parseOracle(percent, percentDecimals)
		if !ok || p <= 0 || p > percentDenominator {
			if err == nil {
				t.Fatalf("PercentOf(%d, %q) = %d, nil; want an error", minor, percent, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("PercentOf(%d, %q): %v", minor, percent, err)
		}
		if want := roundHalfAwayOracle(big.NewInt(minor), big.NewInt(p), big.NewInt(percentDenominator)); got != want {
			t.Fatalf("PercentOf(%d, %q) = %d; want %d", minor, percent, got, want)
		}
	})
}

// roundHalfAwayOracle returns a*b/d rounded half away from zero, for d > 0
// and 0 <= b <= d, in big.Int arithmetic: sign(a) * floor((2|a|b + d) / 2d).
func roundHalfAwayOracle(a, b, d *big.Int) int64 {
	n := new(big.Int).Mul(new(big.Int).Abs(a), b)
	n.Mul(n, big.NewInt(2)).Add(n, d)
	q := n.Quo(n, new(big.Int).Mul(d, big.NewInt(2)))
	if a.Sign() < 0 {
		q.Neg(q)
	}
	return q.Int64()
}
