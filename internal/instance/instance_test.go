package instance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestFromData(t *testing.T) {
	if got, err := FromData("/var/lib/hearth/"); err != nil || got != Legacy {
		t.Errorf("FromData(/var/lib/hearth/) = %q, %v; want %q", got, err, Legacy)
	}
	a, _ := FromData("/srv/hearth-a")
	again, _ := FromData("/srv/../srv/hearth-a")
	b, _ := FromData("/srv/hearth-b")
	if a != again || a == b || !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(a) {
		t.Errorf("FromData: %q, %q (same dir), %q (another): want 8 hex digits, stable per directory, distinct", a, again, b)
	}
	if err := Check(a); err != nil {
		t.Errorf("a derived name fails Check: %v", err)
	}
}

func TestCheckAndPrefixed(t *testing.T) {
	for _, good := range []string{"hearth", "a", "e2e-1", "tenant-a-2", strings.Repeat("x", MaxLen)} {
		if err := Check(good); err != nil {
			t.Errorf("Check(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"", "A", "a_b", "-a", "a-", "a--b", "a.b", "a/b", strings.Repeat("x", MaxLen+1), "a b"} {
		if err := Check(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("Check(%q) = %v, want ErrInvalid naming it", bad, err)
		}
	}
	// containerd's namespace rule (namespaces.Validate), which cgroup and
	// nftables table names also satisfy.
	namespace := regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)
	seen := map[string]string{}
	for _, name := range []string{"hearth", "a", "hearth-a", "hearth-hearth", strings.Repeat("x", MaxLen)} {
		p := Prefixed(name)
		if !namespace.MatchString(p) || len(p) > 76 || !strings.HasPrefix(p, "hearth") {
			t.Errorf("Prefixed(%q) = %q: not a containerd namespace starting hearth", name, p)
		}
		if other, dup := seen[p]; dup {
			t.Errorf("Prefixed(%q) = Prefixed(%q) = %q", name, other, p)
		}
		seen[p] = name
	}
	if Prefixed(Legacy) != "hearth" || Prefixed("a") != "hearth-a" {
		t.Errorf("Prefixed: %q, %q", Prefixed(Legacy), Prefixed("a"))
	}
}

func TestClaimIsExclusiveUntilClosed(t *testing.T) {
	name := fmt.Sprintf("test-%08x", rand.Uint32()) // tests elsewhere on the host claim others
	first, err := Claim(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Claim(name); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), name) {
		t.Errorf("second Claim = %v, want ErrInUse naming the instance", err)
	}
	other, err := Claim(name + "-2")
	if err != nil {
		t.Errorf("another name: %v", err)
	} else {
		other.Close()
	}
	first.Close()
	again, err := Claim(name)
	if err != nil {
		t.Fatalf("Claim after Close: %v", err)
	}
	again.Close()
}
