package eh

import "slices"

// Props is one object's properties: key → value, both strings. An empty value
// in a request means "remove this key"; rendering leaves empty values out.
type Props map[string]string

// Keys returns p's keys in sorted order.
func (p Props) Keys() []string { return p.appendKeys(make([]string, 0, len(p))) }

// appendKeys appends p's keys to keys[:0] and sorts them, so renderers of many
// objects reuse one slice.
func (p Props) appendKeys(keys []string) []string {
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
