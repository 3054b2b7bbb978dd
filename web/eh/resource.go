package eh

// resourceRule is the key schema of static IPs and VLANs (reference §5.1):
// only the descriptive keys are the client's; the rest is assigned.
func resourceRule(key string) (rule, error) {
	switch key {
	case "name":
		return rule{check: line(MaxNameLength), nonEmpty: true}, nil
	case "tags":
		return rule{check: words(nil)}, nil
	}
	if userKey(key) {
		return rule{check: text(MaxTextLength)}, nil
	}
	return rule{}, errUnknownKey
}

func resourceReadOnly(key string) bool {
	switch key {
	case "resource", "type", "netmask", "gateway", "nameserver":
		return true
	}
	return commonReadOnly(key)
}

var resources = &schema{kind: "resource", rule: resourceRule, readOnly: resourceReadOnly}

// NewResource validates the body of /resources/ip/create or
// /resources/vlan/create (name, tags, user:*, all optional; CS-1 sends an
// empty body; a name given must not be empty) and returns the properties
// to store.
func NewResource(in Props) (Props, error) {
	return resources.create(in)
}

// UpdateResource validates a /resources/TYPE/ID/set body against the stored
// properties current and returns the properties to store and the changes.
func UpdateResource(current, in Props) (next, changed Props, err error) {
	return resources.update(current, in, false)
}
