package console

// maxParamDigits bounds every numeric parameter of a control sequence to
// 9999. vt10x loops once per unit of some counts (tab forward/backward), so
// a guest printing ESC[100000000000000Z would otherwise hang its console;
// xterm clamps such parameters too.
const maxParamDigits = 4

// paramClamp drops the digits of control sequence parameters beyond
// maxParamDigits. Its state carries over from one write to the next, as
// sequences split across them.
type paramClamp struct {
	state  uint8 // 0 text, 1 after ESC, 2 in a CSI sequence
	digits int
}

// filter returns p without the excess digits (p itself when there are none).
func (c *paramClamp) filter(p []byte) []byte {
	var out []byte // allocated at the first dropped byte
	for i, b := range p {
		keep := true
		switch c.state {
		case 0:
			if b == 0x1b {
				c.state = 1
			}
		case 1:
			switch b {
			case '[':
				c.state, c.digits = 2, 0
			case 0x1b:
			default:
				c.state = 0
			}
		case 2:
			switch {
			case b >= '0' && b <= '9':
				c.digits++
				keep = c.digits <= maxParamDigits
			case b == 0x1b:
				c.state = 1
			case b >= 0x40 && b <= 0x7e: // the final byte
				c.state = 0
			default: // separators, private markers, intermediates
				c.digits = 0
			}
		}
		if !keep && out == nil {
			out = append(make([]byte, 0, len(p)), p[:i]...)
		} else if out != nil && keep {
			out = append(out, b)
		}
	}
	if out == nil {
		return p
	}
	return out
}
