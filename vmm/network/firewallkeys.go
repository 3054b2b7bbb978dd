package network

import "hearth/internal/ehkeys"

// Firewall is a NIC's ElasticHosts firewall (nic:N:firewall:policy, :accept
// and :reject), enforced on the traffic that comes TO the guest's NIC. The
// zero value lets everything through.
type Firewall struct {
	// Reject true (policy reject): only what Accept lists, and replies to
	// the guest's own connections, get through. False (policy accept, the
	// default): everything but what Refuse lists gets through.
	Reject bool `json:",omitempty"`
	// Accept and Refuse are nic:N:firewall:accept and nic:N:firewall:reject.
	Accept, Refuse []PortRule `json:",omitempty"`
	// Block is nic:0:block, the provider's list of blocked ports (EH
	// trial accounts): dropped whatever the policy and lists say.
	Block []PortRule `json:",omitempty"`
}

// PortRule is one item of a firewall port list.
type PortRule = ehkeys.PortRule

// filters reports whether fw stops anything at all.
func (fw Firewall) filters() bool { return fw.Reject || len(fw.Refuse) > 0 || len(fw.Block) > 0 }
