package money

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestScale(t *testing.T) {
	tests := []struct {
		units string
		want  int
	}{
		{"usd", 2},
		{"USD", 2},
		{"Usd", 2},
		{"eur", 2},
		{"jpy", 0},
		{"JPY", 0},
		{"isk", 0},
		{"kwd", 3},
		{"KWD", 3},
		{"bhd", 3},
		{"clf", 4},
		{"credit", 2},
		{"CREDIT", 2},
		{"percent", 2},
		{"Percent", 2},
	}
	for _, tt := range tests {
		// Twice: the second call is served from the cache.
		for range 2 {
			got, err := Scale(tt.units)
			if err != nil || got != tt.want {
				t.Errorf("Scale(%q) = %d, %v; want %d, nil", tt.units, got, err, tt.want)
			}
		}
	}
}

// badUnits are refused by Scale, IsCurrency and Normalize alike.
var badUnits = []string{
	"",
	"xxx", // ISO 4217 "no currency"
	"XXX",
	"abc",
	"zzz",
	"us",
	"usdd",
	"u",
	" usd",
	"usd ",
	"us-",
	"uſd", // strings.ToUpper makes this "USD"
	"ｕｓｄ",
	"dollars",
	"credits",
	"percentage",
	"points",
	"u\x00d",
	strings.Repeat("usd", 1000),
}

func TestScaleErrors(t *testing.T) {
	for _, units := range badUnits {
		if got, err := Scale(units); err == nil {
			t.Errorf("Scale(%q) = %d, nil; want an error", units, got)
		}
	}
}

func TestIsCurrency(t *testing.T) {
	for _, units := range []string{"usd", "USD", "jpy", "kwd", "KWD", "eur", "clf"} {
		if !IsCurrency(units) {
			t.Errorf("IsCurrency(%q) = false; want true", units)
		}
	}
	for _, units := range append([]string{"credit", "percent", "CREDIT", "Percent"}, badUnits...) {
		if IsCurrency(units) {
			t.Errorf("IsCurrency(%q) = true; want false", units)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ units, want string }{
		{"USD", "usd"},
		{"usd", "usd"},
		{"Jpy", "jpy"},
		{"KWD", "kwd"},
		{"CREDIT", "credit"},
		{"credit", "credit"},
		{"PerCent", "percent"},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.units)
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q, nil", tt.units, got, err, tt.want)
		}
	}
	for _, units := range badUnits {
		if got, err := Normalize(units); err == nil {
			t.Errorf("Normalize(%q) = %q, nil; want an error", units, got)
		}
	}
}

func TestParseMajor(t *testing.T) {
	tests := []struct {
		num   string
		scale int
		want  int64
	}{
		// USD, scale 2.
		{"10.5", 2, 1050},
		{"10.50", 2, 1050},
		{"10.500000", 2, 1050},
		{"100", 2, 10000},
		{"1e2", 2, 10000},
		{"1E2", 2, 10000},
		{"1e+2", 2, 10000},
		{"1e002", 2, 10000},
		{"1.5e-1", 2, 15},
		{"15e-2", 2, 15},
		{"1500e-4", 2, 15},
		{"0.01", 2, 1},
		{"0.05", 2, 5},
		{"-10.5", 2, -1050},
		{"-0.01", 2, -1},
		{"0", 2, 0},
		{"-0", 2, 0},
		{"0.0", 2, 0},
		{"0.000000", 2, 0},
		{"0e30", 2, 0},
		{"0e-30", 2, 0},
		{"-0.0e-5", 2, 0},
		{"0.015e1", 2, 15},
		{"123456789.12", 2, 12345678912},
		{"10000000000000", 2, 1e15},       // the largest amount
		{"-10000000000000", 2, -1e15},     // and the smallest
		{"9999999999999.99", 2, 1e15 - 1}, // 16 digits
		{"1e13", 2, 1e15},
		{"0.0000000000000000000000000001e28", 2, 100},
		{"1000000000000000000000000000000e-30", 2, 100},
		// JPY, scale 0.
		{"5000", 0, 5000},
		{"5000.0", 0, 5000},
		{"5e3", 0, 5000},
		{"-5000", 0, -5000},
		{"1000000000000000", 0, 1e15},
		{"1e15", 0, 1e15},
		{"0.1e1", 0, 1},
		// KWD, scale 3.
		{"1.234", 3, 1234},
		{"1.2340", 3, 1234},
		{"0.001", 3, 1},
		{"10.5", 3, 10500},
		{"-1.234", 3, -1234},
		{"1e12", 3, 1e15},
		// Other scales.
		{"12.5", 4, 125000},
		{"0.000000000000000001", 18, 1},
		{"1", 15, 1e15},
	}
	for _, tt := range tests {
		got, err := ParseMajor(tt.num, tt.scale)
		if err != nil || got != tt.want {
			t.Errorf("ParseMajor(%q, %d) = %d, %v; want %d, nil", tt.num, tt.scale, got, err, tt.want)
		}
	}
}

func TestParseMajorErrors(t *testing.T) {
	tests := []struct {
		num   string
		scale int
		msg   string // the error message contains this
	}{
		{"0.015", 2, "at most 2 decimals"},
		{"0.001", 2, "at most 2 decimals"},
		{"10.501", 2, "at most 2 decimals"},
		{"1e-3", 2, "at most 2 decimals"},
		{"15e-3", 2, "at most 2 decimals"},
		{"0.5", 0, "at most 0 decimals"},
		{"5000.1", 0, "at most 0 decimals"},
		{"1e-1", 0, "at most 0 decimals"},
		{"1.2345", 3, "at most 3 decimals"},
		{"0.0001", 3, "at most 3 decimals"},
		{"0.00000000000000000000000000001", 2, "at most 2 decimals"},
		{"", 2, "empty"},
		{strings.Repeat("1", 41), 2, "longer than 40"},
		{"0." + strings.Repeat("0", 39), 2, "longer than 40"},
		{"1e31", 2, "exponent"},
		{"1e-31", 2, "exponent"},
		{"0e31", 2, "exponent"},
		{"1e999999999", 2, "exponent"},
		{"1e-999999999", 2, "exponent"},
		{"1e99999999999999999999999999999999999", 2, "exponent"},
		{"10000000000000.01", 2, "out of range"},
		{"-10000000000000.01", 2, "out of range"},
		{"1000000000000001", 0, "out of range"},
		{"1e16", 0, "out of range"},
		{"1e30", 2, "out of range"},
		{"9223372036854775807", 0, "out of range"},
		{"9223372036854775808", 0, "out of range"},
		{"-9223372036854775808", 0, "out of range"},
		{"99999999999999999999999999999999999999", 0, "out of range"},
		{"1e13", 3, "out of range"},
		{"1", 16, "out of range"},
		{"1", -1, "scale"},
		{"1", 19, "scale"},
		// Not JSON numbers, so not what encoding/json gives as a json.Number.
		{".5", 2, "not a JSON number"},
		{"1.", 2, "not a JSON number"},
		{"-", 2, "not a JSON number"},
		{"-.5", 2, "not a JSON number"},
		{"+1", 2, "not a JSON number"},
		{"00.10", 2, "not a JSON number"},
		{"01", 2, "not a JSON number"},
		{"-01", 2, "not a JSON number"},
		{"1e", 2, "not a JSON number"},
		{"1e+", 2, "not a JSON number"},
		{"1e-", 2, "not a JSON number"},
		{"1.e2", 2, "not a JSON number"},
		{"1e2.5", 2, "not a JSON number"},
		{"e2", 2, "not a JSON number"},
		{"1..2", 2, "not a JSON number"},
		{"--1", 2, "not a JSON number"},
		{"1-", 2, "not a JSON number"},
		{" 1", 2, "not a JSON number"},
		{"1 ", 2, "not a JSON number"},
		{"1,5", 2, "not a JSON number"},
		{"1_000", 2, "not a JSON number"},
		{"0x10", 2, "not a JSON number"},
		{"NaN", 2, "not a JSON number"},
		{"Infinity", 2, "not a JSON number"},
		{"-Infinity", 2, "not a JSON number"},
		{"\"1\"", 2, "not a JSON number"},
		{"١", 2, "not a JSON number"}, // ARABIC-INDIC DIGIT ONE
	}
	for _, tt := range tests {
		got, err := ParseMajor(tt.num, tt.scale)
		if err == nil {
			t.Errorf("ParseMajor(%q, %d) = %d, nil; want an error containing %q", tt.num, tt.scale, got, tt.msg)
			continue
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseMajor(%q, %d) error = %q; want it to contain %q", tt.num, tt.scale, err, tt.msg)
		}
		if got != 0 {
			t.Errorf("ParseMajor(%q, %d) = %d with an error; want 0", tt.num, tt.scale, got)
		}
	}
}

// TestParseMajorErrorEchoBound checks a refused huge input is not echoed into
// the error message.
func TestParseMajorErrorEchoBound(t *testing.T) {
	huge := strings.Repeat("9", 1<<20)
	_, err := ParseMajor(huge, 2)
	if err == nil || len(err.Error()) > 100 {
		t.Fatalf("ParseMajor(1 MiB of digits) error = %.200q; want a short error", err)
	}
}

func TestParseMajorAllocs(t *testing.T) {
	for _, num := range []string{"10.5", "1e2", "-1.5e-1", "9999999999999.99"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = ParseMajor(num, 2) }); n != 0 {
			t.Errorf("ParseMajor(%q, 2) allocates %v times; want 0", num, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Scale("usd") }); n != 0 {
		t.Errorf(`Scale("usd") allocates %v times; want 0`, n)
	}
}

func TestFormatMajor(t *testing.T) {
	tests := []struct {
		minor int64
		scale int
		want  string
	}{
		{1050, 2, "10.5"},
		{1000, 2, "10"},
		{1001, 2, "10.01"},
		{5, 2, "0.05"},
		{50, 2, "0.5"},
		{100, 2, "1"},
		{-1050, 2, "-10.5"},
		{-5, 2, "-0.05"},
		{0, 2, "0"},
		{1e15, 2, "10000000000000"},
		{-1e15, 2, "-10000000000000"},
		{5000, 0, "5000"},
		{-5000, 0, "-5000"},
		{0, 0, "0"},
		{1, 0, "1"},
		{1234, 3, "1.234"},
		{1230, 3, "1.23"},
		{1, 3, "0.001"},
		{-1, 3, "-0.001"},
		{10500, 3, "10.5"},
		{0, 3, "0"},
		{1, 18, "0.000000000000000001"},
		{math.MaxInt64, 0, "9223372036854775807"},
		{math.MinInt64, 0, "-9223372036854775808"},
		{math.MaxInt64, 2, "92233720368547758.07"},
		{math.MinInt64, 2, "-92233720368547758.08"},
		{math.MinInt64, 18, "-9.223372036854775808"},
		{math.MaxInt64, 18, "9.223372036854775807"},
	}
	for _, tt := range tests {
		if got := FormatMajor(tt.minor, tt.scale); string(got) != tt.want {
			t.Errorf("FormatMajor(%d, %d) = %q; want %q", tt.minor, tt.scale, got, tt.want)
		}
	}
}

func TestFormatMajorBadScale(t *testing.T) {
	for _, scale := range []int{-1, 19, 1000} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("FormatMajor(1, %d) did not panic", scale)
				}
			}()
			FormatMajor(1, scale)
		}()
	}
}

// TestRoundTrip checks ParseMajor(FormatMajor(m, s), s) == m for random m in
// range, with as many digits near the edges as in the middle.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	edges := []int64{0, 1, -1, 9, 10, 99, 100, 101, 1e15, -1e15, 1e15 - 1, -1e15 + 1, 999_999_999_999_999}
	for _, scale := range []int{0, 2, 3, 4} {
		check := func(m int64) {
			t.Helper()
			text := FormatMajor(m, scale)
			got, err := ParseMajor(string(text), scale)
			if err != nil || got != m {
				t.Fatalf("ParseMajor(FormatMajor(%d, %d) = %q) = %d, %v; want %d", m, scale, text, got, err, m)
			}
			// Shortest: no trailing zeros after a point, no bare point.
			if s := string(text); strings.Contains(s, ".") && (strings.HasSuffix(s, "0") || strings.HasSuffix(s, ".")) {
				t.Fatalf("FormatMajor(%d, %d) = %q is not the shortest form", m, scale, s)
			}
		}
		for _, m := range edges {
			check(m)
		}
		for range 200_000 {
			// A random number of digits, so small amounts are tested as
			// often as large ones.
			m := r.Int64N(int64(math.Pow10(1 + r.IntN(15))))
			if r.IntN(10) == 0 {
				m = r.Int64N(2*maxMinor+1) - maxMinor
			}
			if r.IntN(2) == 0 {
				m = -m
			}
			check(m)
		}
	}
}

func TestPercentOf(t *testing.T) {
	tests := []struct {
		minor   int64
		percent string
		want    int64
	}{
		{1000, "12.5", 125},
		{999, "50", 500}, // 499.5 rounds away from zero
		{-999, "50", -500},
		{1, "50", 1},
		{1, "49", 0},
		{-1, "50", -1},
		{-1, "49", 0},
		{99, "12.5", 12}, // 12.375
		{1000, "3", 30},
		{1000, "0.25", 3}, // 2.5
		{1000, "0.0001", 0},
		{10000, "0.0050", 1}, // 0.5
		{1000, "100", 1000},
		{1000, "100.0000", 1000},
		{1000, "1e2", 1000},
		{1000, "1.25e1", 125},
		{0, "50", 0},
		{1e15, "33.3333", 333_333_000_000_000},
		{math.MaxInt64, "100", math.MaxInt64},
		{math.MinInt64, "100", math.MinInt64},
		{math.MaxInt64, "50", 4611686018427387904}, // .5 rounds up
		{math.MinInt64, "50", math.MinInt64 / 2},
	}
	for _, tt := range tests {
		got, err := PercentOf(tt.minor, tt.percent)
		if err != nil || got != tt.want {
			t.Errorf("PercentOf(%d, %q) = %d, %v; want %d, nil", tt.minor, tt.percent, got, err, tt.want)
		}
	}
}

func TestPercentOfErrors(t *testing.T) {
	tests := []struct{ percent, msg string }{
		{"0", "greater than 0"},
		{"-0", "greater than 0"},
		{"0.0000", "greater than 0"},
		{"-1", "greater than 0"},
		{"100.0001", "at most 100"},
		{"101", "at most 100"},
		{"1e3", "at most 100"},
		{"12.34567", "at most 4 decimals"},
		{"0.00001", "at most 4 decimals"},
		{"", "empty"},
		{"abc", "not a JSON number"},
		{".5", "not a JSON number"},
		{"NaN", "not a JSON number"},
		{"1e999999999", "exponent"},
	}
	for _, tt := range tests {
		got, err := PercentOf(1000, tt.percent)
		if err == nil {
			t.Errorf("PercentOf(1000, %q) = %d, nil; want an error containing %q", tt.percent, got, tt.msg)
		} else if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("PercentOf(1000, %q) error = %q; want it to contain %q", tt.percent, err, tt.msg)
		}
	}
}

// TestPercentOfNeverExceeds checks a share of at most 100% is never larger
// than the whole, and has its sign.
func TestPercentOfNeverExceeds(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		minor := r.Int64N(2*maxMinor+1) - maxMinor
		p := 1 + r.Int64N(percentDenominator) // 0.0001 .. 100.0000
		percent := string(FormatMajor(p, percentDecimals))
		got, err := PercentOf(minor, percent)
		if err != nil {
			t.Fatalf("PercentOf(%d, %q): %v", minor, percent, err)
		}
		if abs(got) > abs(minor) || (got != 0 && (got < 0) != (minor < 0)) {
			t.Fatalf("PercentOf(%d, %q) = %d: larger than the whole or of the wrong sign", minor, percent, got)
		}
		if p == percentDenominator && got != minor {
			t.Fatalf("PercentOf(%d, %q) = %d; want all of it", minor, percent, got)
		}
	}
}

func TestProrate(t *testing.T) {
	tests := []struct {
		total, part, whole, want int64
	}{
		{125, 500, 1000, 63}, // 62.5 rounds up
		{125, 1000, 1000, 125},
		{125, 0, 1000, 0},
		{125, 250, 1000, 31}, // 31.25
		{125, 750, 1000, 94}, // 93.75
		{-125, 500, 1000, -63},
		{1, 1, 2, 1},
		{1, 1, 3, 0},
		{2, 1, 3, 1},
		{0, 5, 10, 0},
		{125, -5, 1000, 0},     // clamped to 0
		{125, 5000, 1000, 125}, // clamped to whole
		{125, math.MinInt64, 1000, 0},
		{125, math.MaxInt64, 1000, 125},
		{1e15, 1e15, 1e15, 1e15},
		{1e15, 1e15 - 1, 1e15, 1e15 - 1},
		{1e15, 1, 1e15, 1},
		{1e15, 5e14, 1e15, 5e14},
		{1e15 - 1, 5e14, 1e15, 5e14}, // 499999999999999.5
		{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{math.MinInt64, math.MaxInt64, math.MaxInt64, math.MinInt64},
		{math.MaxInt64, 1, 2, 4611686018427387904},
		{math.MinInt64, 1, 2, math.MinInt64 / 2},
		{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64, math.MaxInt64 - 1},
	}
	for _, tt := range tests {
		if got := Prorate(tt.total, tt.part, tt.whole); got != tt.want {
			t.Errorf("Prorate(%d, %d, %d) = %d; want %d", tt.total, tt.part, tt.whole, got, tt.want)
		}
	}
}

func TestProratePanics(t *testing.T) {
	for _, whole := range []int64{0, -1, math.MinInt64} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Prorate(125, 0, %d) did not panic", whole)
				}
			}()
			Prorate(125, 0, whole)
		}()
	}
}

// TestProrateMonotonic checks that a larger part never reverses less, and
// that all of the whole reverses exactly the total.
func TestProrateMonotonic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 2_000 {
		total := r.Int64N(2*maxMinor+1) - maxMinor
		whole := 1 + r.Int64N(int64(math.Pow10(1+r.IntN(15))))
		prev := int64(0)
		// Every part for a small whole, random increasing parts otherwise.
		step := max(1, whole/500)
		for part := int64(0); part <= whole; part += 1 + r.Int64N(step) {
			got := Prorate(total, part, whole)
			if abs(got) < abs(prev) || abs(got) > abs(total) || (got != 0 && (got < 0) != (total < 0)) {
				t.Fatalf("Prorate(%d, %d, %d) = %d after %d: not monotonic or out of bounds", total, part, whole, got, prev)
			}
			prev = got
		}
		if got := Prorate(total, whole, whole); got != total {
			t.Fatalf("Prorate(%d, %d, %d) = %d; want exactly %d", total, whole, whole, got, total)
		}
	}
}

// TestProrateCumulativeRefunds refunds a purchase in random parts and checks
// the reversals, computed on cumulative amounts as the package documentation
// says, add up to exactly the reward.
func TestProrateCumulativeRefunds(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 10_000 {
		purchase := 1 + r.Int64N(1_000_000)
		reward, err := PercentOf(purchase, string(FormatMajor(1+r.Int64N(percentDenominator), percentDecimals)))
		if err != nil {
			t.Fatal(err)
		}
		var refunded, reversed int64
		for refunded < purchase {
			refunded += 1 + r.Int64N(purchase-refunded)
			reversal := Prorate(reward, refunded, purchase) - reversed
			if reversal < 0 {
				t.Fatalf("negative reversal %d", reversal)
			}
			reversed += reversal
		}
		if reversed != reward {
			t.Fatalf("purchase %d, reward %d: reversed %d in total", purchase, reward, reversed)
		}
	}
	// The example of the package documentation.
	first := Prorate(125, 500, 1000)
	second := Prorate(125, 1000, 1000) - first
	if first != 63 || second != 62 {
		t.Errorf("reversals %d + %d; want 63 + 62", first, second)
	}
}

func abs(x int64) uint64 {
	if x < 0 {
		return -uint64(x)
	}
	return uint64(x)
}

func BenchmarkScale(b *testing.B) {
	for b.Loop() {
		_, _ = Scale("usd")
	}
}

func BenchmarkParseMajor(b *testing.B) {
	for b.Loop() {
		_, _ = ParseMajor("1234.56", 2)
	}
}

func BenchmarkFormatMajor(b *testing.B) {
	for b.Loop() {
		_ = FormatMajor(123456, 2)
	}
}
