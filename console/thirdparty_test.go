package console

import (
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// vncPasswdFile is the password file format of vncpasswd: the password
// DES-encrypted with VNC's fixed key.
func vncPasswdFile(password string) []byte {
	var pw [8]byte
	copy(pw[:], password)
	return vncResponse(string([]byte{23, 82, 107, 6, 35, 78, 88, 7}), pw[:])
}

// TestThirdPartyViewer: Debian's vncsnapshot (an RFB 3.3 viewer from the
// original VNC code) authenticates and takes a picture of the console.
func TestThirdPartyViewer(t *testing.T) {
	snapshot, err := exec.LookPath("vncsnapshot")
	if err != nil {
		t.Skip("needs vncsnapshot (apt-get install vncsnapshot)")
	}
	m := testRegistry(t)
	s, ep := attach(t, m, "s1", "secret")
	s.waitSubscribed(t)
	s.emit([]byte("\x1b[1;32mhello from the guest\x1b[0m\r\n$ "))
	waitScreen(t, m.console("s1"), "hello from the guest")
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, vncPasswdFile("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "console.jpg")
	cmd := exec.Command(snapshot, "-quiet", "-passwd", passwd, ep.IP+"::"+strconv.Itoa(ep.Port), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vncsnapshot: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != DefaultColumns*cellWidth || b.Dy() != (DefaultRows+1)*cellHeight {
		t.Fatalf("snapshot %v", b)
	}
	green := 0
	for y := 0; y < cellHeight; y++ {
		for x := 0; x < 21*cellWidth; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if g > 0x8000 && r < 0x6000 && b < 0x6000 {
				green++
			}
		}
	}
	if green < 100 {
		t.Fatalf("only %d green pixels where the guest printed bold green text", green)
	}

	// A wrong password fails.
	if err := os.WriteFile(passwd, vncPasswdFile("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(snapshot, "-quiet", "-passwd", passwd, ep.IP+"::"+strconv.Itoa(ep.Port), out).CombinedOutput(); err == nil {
		t.Fatalf("vncsnapshot with a wrong password succeeded: %s", b)
	}
}
