package console

import (
	"strconv"
	"unicode/utf8"
)

// X11 keysyms (X11/keysymdef.h) that a terminal turns into bytes.
const (
	ksBackSpace  = 0xff08
	ksTab        = 0xff09
	ksReturn     = 0xff0d
	ksEscape     = 0xff1b
	ksHome       = 0xff50
	ksLeft       = 0xff51
	ksUp         = 0xff52
	ksRight      = 0xff53
	ksDown       = 0xff54
	ksPageUp     = 0xff55
	ksPageDown   = 0xff56
	ksEnd        = 0xff57
	ksInsert     = 0xff63
	ksKPEnter    = 0xff8d
	ksKPHome     = 0xff95
	ksKPDelete   = 0xff9f
	ksKPMultiply = 0xffaa
	ksKP9        = 0xffb9
	ksF1         = 0xffbe
	ksF12        = 0xffc9
	ksShiftL     = 0xffe1
	ksShiftR     = 0xffe2
	ksControlL   = 0xffe3
	ksControlR   = 0xffe4
	ksMetaL      = 0xffe7
	ksMetaR      = 0xffe8
	ksAltL       = 0xffe9
	ksAltR       = 0xffea
	ksDelete     = 0xffff
	ksLeftTab    = 0xfe20
)

// keyboard turns RFB key events into the bytes an xterm sends.
type keyboard struct {
	shift, ctrl, alt bool
	appCursor        bool // DECCKM: cursor keys send ESC O x
}

// event handles one key event and returns the bytes for the guest (nil for
// releases and modifiers).
func (k *keyboard) event(down bool, sym uint32) []byte {
	switch sym {
	case ksShiftL, ksShiftR:
		k.shift = down
		return nil
	case ksControlL, ksControlR:
		k.ctrl = down
		return nil
	case ksAltL, ksAltR, ksMetaL, ksMetaR:
		k.alt = down
		return nil
	}
	if !down {
		return nil
	}
	if seq := k.special(sym); seq != nil {
		return seq
	}
	r, ok := keysymRune(sym)
	if !ok {
		return nil
	}
	var b []byte
	if k.alt {
		b = append(b, 0x1b)
	}
	if k.ctrl {
		if c, ok := controlByte(r); ok {
			return append(b, c)
		}
	}
	return utf8.AppendRune(b, r)
}

// modifierParam is xterm's modifier parameter: 1 + shift + 2·alt + 4·ctrl.
func (k *keyboard) modifierParam() int {
	m := 1
	if k.shift {
		m++
	}
	if k.alt {
		m += 2
	}
	if k.ctrl {
		m += 4
	}
	return m
}

func (k *keyboard) special(sym uint32) []byte {
	cursor := func(final byte) []byte {
		if m := k.modifierParam(); m > 1 {
			return []byte("\x1b[1;" + strconv.Itoa(m) + string(final))
		}
		if k.appCursor {
			return []byte{0x1b, 'O', final}
		}
		return []byte{0x1b, '[', final}
	}
	tilde := func(n int) []byte {
		if m := k.modifierParam(); m > 1 {
			return []byte("\x1b[" + strconv.Itoa(n) + ";" + strconv.Itoa(m) + "~")
		}
		return []byte("\x1b[" + strconv.Itoa(n) + "~")
	}
	switch sym {
	case ksBackSpace:
		if k.ctrl {
			return []byte{0x08}
		}
		return []byte{0x7f}
	case ksTab:
		if k.shift {
			return []byte("\x1b[Z")
		}
		return []byte{'\t'}
	case ksLeftTab:
		return []byte("\x1b[Z")
	case ksReturn, ksKPEnter:
		return []byte{'\r'}
	case ksEscape:
		return []byte{0x1b}
	case ksUp, ksKPHome + 2:
		return cursor('A')
	case ksDown, ksKPHome + 4:
		return cursor('B')
	case ksRight, ksKPHome + 3:
		return cursor('C')
	case ksLeft, ksKPHome + 1:
		return cursor('D')
	case ksHome, ksKPHome:
		return cursor('H')
	case ksEnd, ksKPHome + 7:
		return cursor('F')
	case ksInsert, ksKPHome + 9:
		return tilde(2)
	case ksDelete, ksKPDelete:
		return tilde(3)
	case ksPageUp, ksKPHome + 5:
		return tilde(5)
	case ksPageDown, ksKPHome + 6:
		return tilde(6)
	}
	if sym >= ksF1 && sym <= ksF12 {
		n := int(sym - ksF1)
		if n < 4 {
			if m := k.modifierParam(); m > 1 {
				return []byte("\x1b[1;" + strconv.Itoa(m) + string(rune('P'+n)))
			}
			return []byte{0x1b, 'O', byte('P' + n)}
		}
		return tilde([]int{15, 17, 18, 19, 20, 21, 23, 24}[n-4])
	}
	return nil
}

// keysymRune maps a character keysym: Latin-1 directly, Unicode keysyms as
// 0x01000000 + code point, and the keypad's digits and operators.
func keysymRune(sym uint32) (rune, bool) {
	switch {
	case sym >= 0x20 && sym <= 0x7e, sym >= 0xa0 && sym <= 0xff:
		return rune(sym), true
	case sym >= 0x01000100 && sym <= 0x0110ffff:
		r := rune(sym - 0x01000000)
		return r, utf8.ValidRune(r)
	case sym >= ksKPMultiply && sym <= ksKP9:
		return rune(sym - ksKPMultiply + '*'), true
	case sym == 0xff80: // KP_Space
		return ' ', true
	case sym == 0xffbd: // KP_Equal
		return '=', true
	}
	return 0, false
}

// controlByte is what Ctrl with r sends on a VT220 keyboard.
func controlByte(r rune) (byte, bool) {
	switch {
	case r >= 'a' && r <= 'z':
		return byte(r - 'a' + 1), true
	case r >= '@' && r <= '_':
		return byte(r - '@'), true
	case r == ' ' || r == '2':
		return 0, true
	case r >= '3' && r <= '7':
		return byte(r - '3' + 0x1b), true
	case r == '8' || r == '?':
		return 0x7f, true
	case r == '/':
		return 0x1f, true
	}
	return 0, false
}

// pasteBytes turns clipboard text (Latin-1, as RFB sends it) into typed
// input: line ends become Return.
func pasteBytes(latin1 []byte) []byte {
	out := make([]byte, 0, len(latin1))
	for i := 0; i < len(latin1); i++ {
		switch c := latin1[i]; c {
		case '\r':
			out = append(out, '\r')
			if i+1 < len(latin1) && latin1[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r')
		default:
			out = utf8.AppendRune(out, rune(c))
		}
	}
	return out
}
