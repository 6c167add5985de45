package promo

import (
	"strings"
	"testing"

	"github.com/referd/referd/referral"
)

func TestCheckCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code string
		ok   bool
	}{
		{"ALICE20", true},
		{"été-2026", true},
		{strings.Repeat("é", MaxCodeLength), true},
		{strings.Repeat("x", MaxCodeLength+1), false},
		{"", false},
		{"two words", false},
		{" LEADING", false},
		{"TAB\tBED", false},
		{"NBSP\u00a0X", false},
		{"NUL\x00", false},
	} {
		verr := &referral.ValidationError{}
		c := referral.Text(tc.code)
		CheckCode(verr, "code", &c)
		if ok := verr.Err() == nil; ok != tc.ok {
			t.Errorf("CheckCode(%q): ok %t, want %t (%v)", tc.code, ok, tc.ok, verr.Err())
		}
	}
	verr := &referral.ValidationError{}
	CheckCode(verr, "code", nil)
	if verr.Err() == nil {
		t.Error("an absent code is valid")
	}
}

func FuzzCheckCode(f *testing.F) {
	f.Add("ALICE20")
	f.Add("a b")
	f.Fuzz(func(t *testing.T, code string) {
		verr := &referral.ValidationError{}
		c := referral.Text(code)
		got := CheckCode(verr, "code", &c)
		if verr.Err() == nil && (got == "" || len([]rune(got)) > MaxCodeLength || strings.ContainsAny(got, " \t\r\n")) {
			t.Errorf("CheckCode accepted %q", got)
		}
	})
}
