package guest

import (
	"strings"
	"testing"
)

func TestSpecValidation(t *testing.T) {
	for _, c := range []struct {
		g    Spec
		want string
	}{
		{Spec{ID: "bad/id", Boot: Disk{Image: "x"}}, "id"},
		{Spec{ID: "a", Hostname: "no_underscores", Boot: Disk{Image: "x"}}, "hostname"},
		{Spec{ID: "a"}, "boot"},
		{Spec{ID: "a", Type: "lxc", Boot: Disk{Image: "x"}}, "type"},
		{Spec{ID: "a", Boot: Disk{Image: "x"}, Disks: []Disk{{Device: "../sda", Image: "y"}}}, "../sda"},
		{Spec{ID: "a", Boot: Disk{Image: "x"}, Disks: []Disk{{Device: "sdb", Image: "y"}, {Device: "sdb", Image: "z"}}}, "twice"},
	} {
		if err := c.g.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.g, err, c.want)
		}
	}
}
