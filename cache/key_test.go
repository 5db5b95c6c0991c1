package cache

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateKey(t *testing.T) {
	good := []string{"a", "proj-42", "job-9f3a", "0", "a.b_c-d", strings.Repeat("a", 128)}
	for _, k := range good {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v", k, err)
		}
	}
	bad := []string{"", ".", "..", "../x", "a/b", "A", "-a", ".a", "_a", "a b", "a\x00", "ключ",
		strings.Repeat("a", 129), "a\n"}
	for _, k := range bad {
		if err := ValidateKey(k); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalid", k, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	cases := map[string]int64{
		"20GiB": 20 << 30, "20G": 20 << 30, "20g": 20 << 30, "512MiB": 512 << 20,
		"512M": 512 << 20, "1073741824": 1 << 30, "1TiB": 1 << 40, "1EiB": 1 << 60, "1e": 1 << 60,
		"1.5GiB": 3 << 29, "20 GB": 20 << 30, "4096b": 4096, "2PiB": 2 << 50,
	}
	for s, want := range cases {
		got, err := ParseSize(s)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"0", "-1", "10XB", "", "G", "abc", "1.5.5G", "2EiB", "99999999999999999999999G", "1EiB1", "1 iB", "NaN", "1e3G", "0.1B"} {
		if _, err := ParseSize(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSize(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestParseAge(t *testing.T) {
	cases := map[string]time.Duration{"72h": 72 * time.Hour, "90m": 90 * time.Minute, "3d": 72 * time.Hour,
		"2w": 14 * 24 * time.Hour, "0s": 0, "1.5d": 36 * time.Hour}
	for s, want := range cases {
		if got, err := ParseAge(s); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"yesterday", "", "-1h", "-2d", "d", "3x", "NaNd", "1e9d"} {
		if _, err := ParseAge(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseAge(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestParsePercent(t *testing.T) {
	for s, want := range map[string]float64{"20%": 20, "20": 20, "0": 0, "99.5%": 99.5} {
		if got, err := ParsePercent(s); err != nil || got != want {
			t.Errorf("ParsePercent(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"150%", "100%", "-1%", "lots", "", "NaN"} {
		if _, err := ParsePercent(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePercent(%q) = %v, want ErrInvalid", s, err)
		}
	}
}
