package console

import (
	"crypto/des"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"
)

// MaxPasswordLength is VNC authentication's limit: the password is a DES key.
const MaxPasswordLength = 8

// CheckPassword tells whether p can be a VNC password. Longer passwords are
// refused, never cut, so that what the user set is what unlocks the console.
func CheckPassword(p string) error {
	if len(p) > MaxPasswordLength {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrPasswordTooLong, len(p), MaxPasswordLength)
	}
	return nil
}

// vncResponse is the answer to a VNC authentication challenge: the challenge
// DES-encrypted with the password as key, each key byte bit-reversed (a
// quirk of the original VNC code that every client copies).
func vncResponse(password string, challenge []byte) []byte {
	var key [8]byte
	copy(key[:], password)
	for i, b := range key {
		key[i] = bits.Reverse8(b)
	}
	block, _ := des.NewCipher(key[:]) // a DES key of 8 bytes is always valid
	out := make([]byte, len(challenge))
	for i := 0; i+8 <= len(challenge); i += 8 {
		block.Encrypt(out[i:i+8], challenge[i:i+8])
	}
	return out
}

func checkResponse(password string, challenge, response []byte) bool {
	return subtle.ConstantTimeCompare(vncResponse(password, challenge), response) == 1
}

// tokens are short-lived console tickets: HMAC-SHA256 over the server id and
// the expiry, so a URL opens one console for a minute and nothing else.
type tokens struct {
	key []byte
	now func() time.Time
	ttl time.Duration
}

func (t tokens) mac(server string, expiry uint64) []byte {
	h := hmac.New(sha256.New, t.key)
	fmt.Fprintf(h, "hearth-console\x00%s\x00%d", server, expiry)
	return h.Sum(nil)[:20]
}

func (t tokens) mint(server string) string {
	expiry := uint64(t.now().Add(t.ttl).Unix())
	b := binary.BigEndian.AppendUint64(nil, expiry)
	return base64.RawURLEncoding.EncodeToString(append(b, t.mac(server, expiry)...))
}

func (t tokens) check(server, token string) error {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 28 {
		return fmt.Errorf("%w: malformed", ErrBadToken)
	}
	expiry := binary.BigEndian.Uint64(b)
	if !hmac.Equal(b[8:], t.mac(server, expiry)) {
		return fmt.Errorf("%w: not for server %s", ErrBadToken, server)
	}
	if t.now().Unix() > int64(expiry) {
		return fmt.Errorf("%w: expired", ErrBadToken)
	}
	return nil
}
