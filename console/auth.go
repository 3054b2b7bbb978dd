package console

import (
	"crypto/des"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
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

// tokens are console tickets: each opens one console (server) for one user,
// once, within the TTL. A token is a random nonce, its expiry and an
// HMAC-SHA256 over the three and the user and server; a checked token's
// nonce is remembered until it expires, so it cannot be used again.
type tokens struct {
	key []byte
	now func() time.Time
	ttl time.Duration

	mu   sync.Mutex
	used map[[16]byte]time.Time // nonce → expiry
}

const tokenLen = 16 + 8 + 20

func (t *tokens) mac(server, user string, nonce []byte, expiry uint64) []byte {
	h := hmac.New(sha256.New, t.key)
	fmt.Fprintf(h, "hearth-console\x00%s\x00%s\x00%x\x00%d", server, user, nonce, expiry)
	return h.Sum(nil)[:20]
}

func (t *tokens) mint(server, user string) string {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	expiry := uint64(t.now().Add(t.ttl).Unix())
	b := binary.BigEndian.AppendUint64(nonce, expiry)
	return base64.RawURLEncoding.EncodeToString(append(b, t.mac(server, user, nonce, expiry)...))
}

// check accepts token for server and user once; it is ErrBadToken when
// malformed, for another server or user, expired or used before.
func (t *tokens) check(server, user, token string) error {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != tokenLen {
		return fmt.Errorf("%w: malformed", ErrBadToken)
	}
	nonce, expiry := b[:16], binary.BigEndian.Uint64(b[16:24])
	if !hmac.Equal(b[24:], t.mac(server, user, nonce, expiry)) {
		return fmt.Errorf("%w: not for this server and user", ErrBadToken)
	}
	now := t.now()
	if now.Unix() > int64(expiry) {
		return fmt.Errorf("%w: expired", ErrBadToken)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for n, exp := range t.used {
		if now.After(exp) {
			delete(t.used, n)
		}
	}
	key := [16]byte(nonce)
	if _, seen := t.used[key]; seen {
		return fmt.Errorf("%w: already used", ErrBadToken)
	}
	t.used[key] = time.Unix(int64(expiry)+1, 0)
	return nil
}
