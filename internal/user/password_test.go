package user

import (
	"strings"
	"testing"
)

func TestPasswordHashing(t *testing.T) {
	tests := []struct {
		name, password string
	}{
		{"ascii", "correct horse battery"},
		{"unicode", "पासवर्ड-सुरक्षित-🚇"},
		{"max length", strings.Repeat("ж", 128)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := hashPassword(tt.password)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
				t.Fatalf("hash %q does not use argon2id with OWASP parameters", h)
			}
			if ok, err := checkPassword(h, tt.password); !ok || err != nil {
				t.Fatalf("checkPassword(right) = %v, %v", ok, err)
			}
			if ok, _ := checkPassword(h, tt.password+"x"); ok {
				t.Fatalf("checkPassword accepted a wrong password")
			}
			h2, _ := hashPassword(tt.password)
			if h2 == h {
				t.Fatalf("two hashes of one password are equal: the salt is not random")
			}
		})
	}
}

func TestCheckPasswordRejectsBadHashes(t *testing.T) {
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=x$AAAA$AAAA", "$argon2id$v=19$m=16,t=1,p=1$!!$AAAA"} {
		if ok, err := checkPassword(bad, "pw"); ok || err == nil {
			t.Errorf("checkPassword(%q) = %v, %v; want false and an error", bad, ok, err)
		}
	}
}
