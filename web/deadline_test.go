package web

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"hearth/internal/httpdeadline"
)

// A client that trickles an API request's body is cut off at the body
// deadline, before any of it is acted on; a prompt one is answered.
func TestTrickledAPIBodyIsCutOff(t *testing.T) {
	e := newEnv(t, withDeadlines(httpdeadline.Limits{Body: 300 * time.Millisecond, Write: time.Second, Progress: 1024, Window: 300 * time.Millisecond}))
	u := e.user("alice", false)
	send := func(pause time.Duration) (string, error) {
		c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		body := "name trickle\nsize 1M\n"
		fmt.Fprintf(c, "POST /drives/create HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.login+":"+u.secret)), len(body))
		for _, b := range []byte(body) {
			if _, err := c.Write([]byte{b}); err != nil {
				return "", err
			}
			time.Sleep(pause)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line), err
	}
	if line, err := send(0); line != "HTTP/1.1 200 OK" {
		t.Fatalf("a prompt create: %q, %v", line, err)
	}
	// 21 bytes at 10 a second take 2 s; the deadline is 0.3 s.
	if line, err := send(100 * time.Millisecond); err == nil {
		t.Fatalf("a trickled create was answered: %q", line)
	}
	if drives := u.get("/drives/list").expect(t, 200).body; strings.Count(drives, "\n") != 1 {
		t.Fatalf("drives after one prompt and one trickled create:\n%s", drives)
	}
}
