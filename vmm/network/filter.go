package network

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// DefaultFilterTable names the nftables tables of a Hearth instance.
const DefaultFilterTable = "hearth"

// filter loads the instance's nftables tables, two of one name (WithFilterTable):
//
//   - bridge family: base chain "ports" (prerouting) jumps, per guest NIC,
//     from its host veth to a chain named after the veth (spoofRules);
//   - inet family: base chain "input" jumps from each guest bridge to
//     "from-guests" (hostRules); base chain "forward" jumps the traffic to a
//     NIC whose firewall stops anything to a chain named after its veth
//     (firewallRules).
//
// Each jump carries the NIC's owner tag (vethOwner, as the veth's alias) or
// "bridge NAME" as its comment, by which a later Hearth finds it again.
// Every change is one netlink batch, so a port is never half filtered.
type filter struct {
	name    string
	apiPort uint16 // 0 = the API stays closed to guests
}

const (
	chainPorts   = "ports"
	chainInput   = "input"
	chainGuests  = "from-guests"
	chainForward = "forward"
	bridgeTag    = "bridge "
)

func (f *filter) bridgeTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyBridge, Name: f.name}
}

func (f *filter) inetTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: f.name}
}

func baseChain(t *nftables.Table, name string, hook *nftables.ChainHook, prio int32) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio)), Policy: &accept}
}

// The base chains. Ports filter at bridge prerouting before br_netfilter
// (priority 0) hands IPv4 to the inet hooks; the others at filter priority.
func (f *filter) ports() *nftables.Chain {
	return baseChain(f.bridgeTable(), chainPorts, nftables.ChainHookPrerouting, -300)
}

func (f *filter) input() *nftables.Chain {
	return baseChain(f.inetTable(), chainInput, nftables.ChainHookInput, 0)
}

func (f *filter) forward() *nftables.Chain {
	return baseChain(f.inetTable(), chainForward, nftables.ChainHookForward, 0)
}

func (f *filter) guests() *nftables.Chain {
	return &nftables.Chain{Name: chainGuests, Table: f.inetTable()}
}

func (f *filter) fail(what string, err error) error {
	return fmt.Errorf("nftables table %s: %s: %w", f.name, what, err)
}

func comment(tag string) []byte { return userdata.AppendString(nil, userdata.TypeComment, tag) }

func tagOf(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

// jumpTarget is the chain a rule jumps to ("" = none).
func jumpTarget(r *nftables.Rule) string {
	for _, e := range r.Exprs {
		if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictJump {
			return v.Chain
		}
	}
	return ""
}

func addRules(c *nftables.Conn, chain *nftables.Chain, rules [][]expr.Any, tag string) {
	for _, r := range rules {
		nr := &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: r}
		if tag != "" {
			nr.UserData = comment(tag)
		}
		c.AddRule(nr)
	}
}

// untag queues the deletion of chain's rules whose tag matches and returns
// the chains they jump to.
func untag(c *nftables.Conn, chain *nftables.Chain, match func(tag string) bool) ([]string, error) {
	rules, err := c.GetRules(chain.Table, chain)
	if err != nil {
		return nil, err
	}
	var targets []string
	for _, r := range rules {
		if !match(tagOf(r)) {
			continue
		}
		if err := c.DelRule(r); err != nil {
			return nil, err
		}
		if t := jumpTarget(r); t != "" {
			targets = append(targets, t)
		}
	}
	return targets, nil
}

// chains lists the names of the chains of table t.
func chains(c *nftables.Conn, t *nftables.Table) (map[string]bool, error) {
	all, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, ch := range all {
		if ch.Table.Name == t.Name {
			names[ch.Name] = true
		}
	}
	return names, nil
}

// setup creates the tables and base chains (or keeps those an earlier
// Hearth left, with the ports of its running guests), loads the host's
// rules afresh (the API port may have changed) and closes the host to the
// public bridge.
func (f *filter) setup(public string) error {
	c, err := nftables.New()
	if err != nil {
		return f.fail("netlink", err)
	}
	c.AddTable(f.bridgeTable())
	c.AddTable(f.inetTable())
	c.AddChain(f.ports())
	c.AddChain(f.input())
	c.AddChain(f.forward())
	guests := c.AddChain(f.guests())
	c.FlushChain(guests)
	addRules(c, guests, hostRules(f.apiPort), "")
	if err := c.Flush(); err != nil {
		return f.fail("create", err)
	}
	return f.closeHost(public)
}

// closeHost makes what comes from bridge to the host pass the host rules.
func (f *filter) closeHost(bridge string) error {
	c, err := nftables.New()
	if err != nil {
		return f.fail("netlink", err)
	}
	rules, err := c.GetRules(f.inetTable(), f.input())
	if err != nil {
		return f.fail("list input", err)
	}
	for _, r := range rules {
		if tagOf(r) == bridgeTag+bridge {
			return nil
		}
	}
	addRules(c, f.input(), [][]expr.Any{fromBridge(bridge, chainGuests)}, bridgeTag+bridge)
	if err := c.Flush(); err != nil {
		return f.fail("close the host to "+bridge, err)
	}
	return nil
}

// forgetBridge drops the host rule of a bridge that is gone.
func (f *filter) forgetBridge(bridge string) error {
	c, err := nftables.New()
	if err != nil {
		return f.fail("netlink", err)
	}
	if _, err := untag(c, f.input(), func(tag string) bool { return tag == bridgeTag+bridge }); err != nil {
		return f.fail("list input", err)
	}
	if err := c.Flush(); err != nil {
		return f.fail("forget "+bridge, err)
	}
	return nil
}

// setPort (re)loads the rules of one NIC, port its host veth and owner its
// tag, replacing whatever it had: anti-spoofing always, the firewall when
// it stops anything. public: the NIC is on the public bridge.
func (f *filter) setPort(owner, port string, nic NIC, mac net.HardwareAddr, public bool) error {
	c, err := nftables.New()
	if err != nil {
		return f.fail("netlink", err)
	}
	isOwner := func(tag string) bool { return tag == owner }
	if _, err := untag(c, f.ports(), isOwner); err != nil {
		return f.fail("list ports", err)
	}
	if _, err := untag(c, f.forward(), isOwner); err != nil {
		return f.fail("list forward", err)
	}
	var addr netip.Addr
	if public {
		addr = nic.Address.Addr()
	}
	spoof := c.AddChain(&nftables.Chain{Name: port, Table: f.bridgeTable()})
	c.FlushChain(spoof)
	addRules(c, spoof, spoofRules(mac, public, addr), "")
	addRules(c, f.ports(), [][]expr.Any{fromPort(port)}, owner)

	fwChain := &nftables.Chain{Name: port, Table: f.inetTable()}
	if nic.Firewall.filters() {
		c.AddChain(fwChain)
		c.FlushChain(fwChain)
		addRules(c, fwChain, firewallRules(nic.Firewall), "")
		addRules(c, f.forward(), firewallJumps(port, nic.Bridge, mac, addr), owner)
	} else if have, err := chains(c, f.inetTable()); err != nil {
		return f.fail("list chains", err)
	} else if have[port] {
		c.FlushChain(fwChain)
		c.DelChain(fwChain)
	}
	if err := c.Flush(); err != nil {
		return f.fail("rules of "+port, err)
	}
	return nil
}

// dropPorts removes the rules of every NIC whose tag starts with owner.
func (f *filter) dropPorts(owner string) error {
	c, err := nftables.New()
	if err != nil {
		return f.fail("netlink", err)
	}
	isOwner := func(tag string) bool { return strings.HasPrefix(tag, owner) }
	for _, base := range []*nftables.Chain{f.ports(), f.forward()} {
		// Tables someone removed hold no rules to remove.
		if have, err := chains(c, base.Table); err != nil {
			return f.fail("list chains", err)
		} else if !have[base.Name] {
			continue
		}
		targets, err := untag(c, base, isOwner)
		if err != nil {
			return f.fail("list "+base.Name, err)
		}
		seen := map[string]bool{}
		for _, t := range targets {
			if !seen[t] {
				seen[t] = true
				ch := &nftables.Chain{Name: t, Table: base.Table}
				c.FlushChain(ch)
				c.DelChain(ch)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return f.fail("drop rules of "+owner, err)
	}
	return nil
}

// removeIfIdle deletes both tables when no NIC has rules left, and reports
// whether it did; otherwise they stay, protecting the guests that still run.
func (f *filter) removeIfIdle() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, f.fail("netlink", err)
	}
	for _, base := range []*nftables.Chain{f.ports(), f.forward()} {
		rules, err := c.GetRules(base.Table, base)
		if err != nil {
			return false, f.fail("list "+base.Name, err)
		}
		if len(rules) > 0 {
			return false, nil
		}
	}
	c.DelTable(f.bridgeTable())
	c.DelTable(f.inetTable())
	if err := c.Flush(); err != nil {
		return false, f.fail("delete", err)
	}
	return true, nil
}
