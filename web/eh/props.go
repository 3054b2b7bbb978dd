package eh

import "slices"

// Props is one object's properties: key → value, both strings. An empty value
// in a request means "remove this key"; rendering leaves empty values out.
type Props map[string]string

// Keys returns p's keys in sorted order.
func (p Props) Keys() []string { return p.appendKeys(make([]string, 0, len(p))) }

// appendKeys returns p's keys sorted, reusing keys: when keys already holds
// exactly p's key set (the previous object of a list usually has the same
// keys) it is returned as it is, which spares the sort that dominates
// rendering.
func (p Props) appendKeys(keys []string) []string {
	if len(keys) == len(p) && len(keys) > 0 {
		same := true
		for _, k := range keys {
			if _, ok := p[k]; !ok {
				same = false
				break
			}
		}
		if same {
			return keys
		}
	}
	keys = keys[:0]
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Clone returns a copy of p (nil stays nil).
func (p Props) Clone() Props {
	if p == nil {
		return nil
	}
	c := make(Props, len(p))
	for k, v := range p {
		c[k] = v
	}
	return c
}
