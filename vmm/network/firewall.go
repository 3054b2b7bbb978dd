package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// rule is one iptables rule Hearth owns, tagged with a "hearth:" comment.
type rule struct {
	table, chain string
	first        bool // insert at the top of the chain instead of appending
	spec         []string
}

// vlanRules isolate a VLAN bridge: frames are bridged between its ports,
// but nothing is routed into or out of it and the host accepts nothing
// from it, so its guests reach each other and no one else.
func vlanRules(bridge string) []rule {
	tag := func(what string) []string {
		return []string{"-m", "comment", "--comment", prefix + ":" + bridge + ":" + what, "-j", "DROP"}
	}
	return []rule{
		{"filter", "FORWARD", true, append([]string{"-i", bridge, "!", "-o", bridge}, tag("isolate-out")...)},
		{"filter", "FORWARD", true, append([]string{"!", "-i", bridge, "-o", bridge}, tag("isolate-in")...)},
		{"filter", "INPUT", true, append([]string{"-i", bridge}, tag("isolate-host")...)},
	}
}

// natRules masquerade the subnet's traffic leaving through any interface
// but the public bridge, and let it (and its replies) through a FORWARD
// chain whose policy may be DROP. Appended, so VLAN isolation comes first;
// "! -o hearth+" keeps other Hearth bridges out of reach.
func natRules(bridge string, subnet netip.Prefix) []rule {
	comment := func(what string) []string {
		return []string{"-m", "comment", "--comment", prefix + ":" + bridge + ":" + what}
	}
	return []rule{
		{"nat", "POSTROUTING", false, append([]string{"-s", subnet.String(), "!", "-o", bridge}, append(comment("nat"), "-j", "MASQUERADE")...)},
		{"filter", "FORWARD", false, append([]string{"-i", bridge, "!", "-o", prefix + "+"}, append(comment("nat-out"), "-j", "ACCEPT")...)},
		{"filter", "FORWARD", false, append([]string{"!", "-i", prefix + "+", "-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"}, append(comment("nat-in"), "-j", "ACCEPT")...)},
	}
}

func (r rule) String() string {
	return fmt.Sprintf("-t %s %s %s", r.table, r.chain, strings.Join(r.spec, " "))
}

// errNoRule is iptables' exit status 1 for -C/-D of a rule that is absent.
var errNoRule = errors.New("no such rule")

func iptables(ctx context.Context, r rule, op string) error {
	args := append([]string{"-w", "-t", r.table, op, r.chain}, r.spec...)
	if op == "-I" {
		args = append([]string{"-w", "-t", r.table, op, r.chain, "1"}, r.spec...)
	}
	cmd := exec.CommandContext(ctx, "iptables", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 && (op == "-C" || op == "-D") {
		return errNoRule
	}
	if err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// ensure adds r unless it is there already.
func (r rule) ensure(ctx context.Context) error {
	err := iptables(ctx, r, "-C")
	if !errors.Is(err, errNoRule) {
		return err
	}
	op := "-A"
	if r.first {
		op = "-I"
	}
	return iptables(ctx, r, op)
}

// remove deletes every copy of r; absent is fine.
func (r rule) remove(ctx context.Context) error {
	for {
		err := iptables(ctx, r, "-D")
		if errors.Is(err, errNoRule) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func ensureRules(ctx context.Context, rules []rule) error {
	for i, r := range rules {
		if err := r.ensure(ctx); err != nil {
			removeRules(ctx, rules[:i])
			return err
		}
	}
	return nil
}

func removeRules(ctx context.Context, rules []rule) error {
	var errs []error
	for _, r := range rules {
		errs = append(errs, r.remove(ctx))
	}
	return errors.Join(errs...)
}

// setSysctl writes a value under /proc/sys/net (a kernel setting, not a file
// on disk).
func setSysctl(key, value string) error {
	path := "/proc/sys/net/" + key
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s: %w", path, err)
	}
	return nil
}
