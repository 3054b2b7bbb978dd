package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/internal/logtest"
)

const crashChildEnv = "HEARTH_STORAGE_CRASH_CHILD"

// crashChild creates drives and images them from a golden drive in a loop,
// until the parent kills it with SIGKILL.
func crashChild(dir string) {
	ctx := context.Background()
	s, err := Open(dir, WithImagingWorkers(2))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	users, _ := s.Users(ctx)
	var owner string
	if len(users) == 0 {
		u, _, err := s.CreateUser(ctx, "crash", false)
		if err != nil {
			fmt.Println("user:", err)
			os.Exit(2)
		}
		owner = u.ID
		golden, _ := s.CreateDrive(ctx, Drive{Owner: owner, Name: "golden", Size: 24 << 20})
		data := make([]byte, 24<<20)
		rand.Read(data)
		if _, err := s.WriteDrive(ctx, golden.ID, 0, bytes.NewReader(data)); err != nil {
			fmt.Println("golden:", err)
			os.Exit(2)
		}
	} else {
		owner = users[0].ID
	}
	drives, _ := s.Drives(ctx, owner)
	var golden string
	for _, d := range drives {
		if d.Name == "golden" {
			golden = d.ID
		}
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		d, err := s.CreateDrive(ctx, Drive{Owner: owner, Name: "copy", Size: 24 << 20})
		if err != nil {
			fmt.Println("create:", err)
			os.Exit(2)
		}
		if _, err := s.StartImaging(ctx, d.ID, golden, ""); err != nil {
			fmt.Println("image:", err)
			os.Exit(2)
		}
		if i%4 == 3 {
			s.WaitImaging(ctx, d.ID)
		}
		// Destroy and resize earlier copies too (finished ones only; imaging
		// ones refuse): a resize writes the file before the row, a destroy
		// the row before the file.
		all, _ := s.Drives(ctx, owner)
		for _, old := range all {
			if old.Name != "copy-resized" || old.Imaging != "" {
				continue
			}
			if err := s.DeleteDrive(ctx, old.ID); err != nil {
				fmt.Println("delete:", err)
				os.Exit(2)
			}
			break
		}
		for _, old := range all {
			if old.Name != "copy" || old.Imaging != "" || old.ID == d.ID {
				continue
			}
			if _, err := s.UpdateDrive(ctx, old.ID, func(d *Drive) error { d.Name, d.Size = "copy-resized", 32<<20; return nil }); err != nil {
				fmt.Println("resize:", err)
				os.Exit(2)
			}
			break
		}
	}
}

// TestCrashConsistency kills a process in the middle of drive creation and
// imaging, again and again, and checks after every restart that no image file
// lacks its row, no row lacks its file, no drive is stuck imaging, and every
// drive whose imaging was started holds exactly the golden contents.
func TestCrashConsistency(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashConsistency$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child said %q", round, line)
		}
		wait, _ := rand.Int(rand.Reader, big.NewInt(400))
		time.Sleep(time.Duration(50+wait.Int64()) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		s, err := Open(dir, WithLogger(logtest.Logger(t)))
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		drives, err := s.Drives(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var golden []byte
		for _, d := range drives {
			if d.Name == "golden" {
				golden = readAll(t, s, d.ID)
			}
		}
		files, _ := filepath.Glob(filepath.Join(dir, "drives", "*"))
		if len(files) != len(drives) {
			t.Errorf("round %d: %d files for %d drives", round, len(files), len(drives))
		}
		imaged := 0
		for _, d := range drives {
			d, err := s.WaitImaging(ctx, d.ID)
			if err != nil {
				t.Fatalf("round %d: drive %s stuck imaging: %v", round, d.ID, err)
			}
			info, err := os.Stat(s.DrivePath(d.ID))
			if err != nil || info.Size() != d.Size {
				t.Errorf("round %d: drive %s: file %v, %v", round, d.ID, info, err)
			}
			events, _ := s.Events(ctx, d.ID, 100)
			started := false
			for _, e := range events {
				if e.Kind == "drive.image" && strings.Contains(e.Message, "failed") {
					t.Errorf("round %d: drive %s: %s", round, d.ID, e.Message)
				}
				started = started || e.Kind == "drive.image"
			}
			if strings.HasPrefix(d.Name, "copy") && started {
				imaged++
				got := readAll(t, s, d.ID)
				if !bytes.Equal(got[:len(golden)], golden) || len(bytes.Trim(got[len(golden):], "\x00")) != 0 {
					t.Errorf("round %d: drive %s (%s) differs from the golden drive", round, d.ID, d.Name)
				}
			}
		}
		t.Logf("round %d: %d drives, %d imaged", round, len(drives), imaged)
		s.Close()
	}
}

func readAll(t *testing.T, s *Store, id string) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.ReadDrive(context.Background(), id, 0, 1<<40, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
