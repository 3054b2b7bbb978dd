package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
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

// errNoRule is iptables' exit status 1 for -C/-D of a rule that is absent.
var errNoRule = errors.New("no such rule")

// iptables runs iptables, waiting for the xtables lock, and returns its output.
func iptables(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 && slices.ContainsFunc(args, func(a string) bool { return a == "-C" || a == "-D" }) {
		return "", errNoRule
	}
	if err != nil {
		return "", fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (r rule) run(ctx context.Context, op string) error {
	args := []string{"-t", r.table, op, r.chain}
	if op == "-I" {
		args = append(args, "1")
	}
	_, err := iptables(ctx, append(args, r.spec...)...)
	return err
}

// ensure adds r unless it is there already.
func (r rule) ensure(ctx context.Context) error {
	err := r.run(ctx, "-C")
	if !errors.Is(err, errNoRule) {
		return err
	}
	if r.first {
		return r.run(ctx, "-I")
	}
	return r.run(ctx, "-A")
}

// remove deletes every copy of r; absent is fine.
func (r rule) remove(ctx context.Context) error {
	for {
		err := r.run(ctx, "-D")
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
			for _, added := range rules[:i] {
				added.remove(context.WithoutCancel(ctx))
			}
			return err
		}
	}
	return nil
}

// ruleChains are where Hearth puts rules.
var ruleChains = []struct{ table, chain string }{{"nat", "POSTROUTING"}, {"filter", "FORWARD"}, {"filter", "INPUT"}}

// bridgeRules lists the rules whose comment says they belong to bridge,
// whatever their spec: those of an earlier run with another subnet too.
func bridgeRules(ctx context.Context, bridge string) ([]rule, error) {
	tag := prefix + ":" + bridge + ":"
	var rules []rule
	for _, c := range ruleChains {
		out, err := iptables(ctx, "-t", c.table, "-S", c.chain)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(out, "\n") {
			fields := strings.Fields(line)
			if len(fields) < 3 || fields[0] != "-A" || !strings.Contains(line, tag) {
				continue
			}
			spec := fields[2:]
			for i, f := range spec { // our comments hold no spaces; iptables quotes them anyway
				spec[i] = strings.Trim(f, `"`)
			}
			rules = append(rules, rule{table: c.table, chain: c.chain, spec: spec})
		}
	}
	return rules, nil
}

// syncRules makes bridge's rules exactly want, touching nothing when they
// are already (so a restart leaves running guests' traffic alone).
func syncRules(ctx context.Context, bridge string, want []rule) error {
	have, err := bridgeRules(ctx, bridge)
	if err != nil {
		return err
	}
	if len(have) == len(want) && !slices.ContainsFunc(want, func(r rule) bool { return r.run(ctx, "-C") != nil }) {
		return nil
	}
	var errs []error
	for _, r := range have {
		errs = append(errs, r.remove(ctx))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ensureRules(ctx, want)
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
