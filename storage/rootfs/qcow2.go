package rootfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// convertQcow2 converts the qcow2 image src to raw into out with qemu-img
// (Debian's qemu-utils) and sizes it as a raw image. An image with a
// backing file or an external data file is refused: qemu-img would read
// those from the host.
func convertQcow2(ctx context.Context, src, out *os.File, o *options) (Result, error) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return Result{}, fmt.Errorf("qcow2 image: qemu-img not found (install Debian's qemu-utils): %w", ErrUnsupported)
	}
	// qemu runs qemu-img, taking exit status okExit as success too. Its
	// complaint, the first line without our paths, is the error.
	// A progress writer, when given, takes what qemu-img prints instead.
	qemu := func(okExit int, progress io.Writer, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, qemuImg, args...)
		var output, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &output, &stderr
		if progress != nil {
			cmd.Stdout = progress
		}
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return output.Bytes(), nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !errors.As(err, &exit):
			return nil, err
		case exit.ExitCode() == okExit:
			return output.Bytes(), nil
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		first := strings.TrimPrefix(strings.TrimPrefix(lines[0], "qemu-img: "), "ERROR: ")
		msg := oneLine([]byte(first), err, src.Name(), out.Name())
		if len(lines) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(lines)-1)
		}
		return nil, fmt.Errorf("qcow2 image: qemu-img %s: %s: %w", args[0], msg, ErrInvalidImage)
	}
	output, err := qemu(0, nil, "info", "--output=json", "-f", "qcow2", src.Name())
	if err != nil {
		return Result{}, err
	}
	var info struct {
		VirtualSize     int64  `json:"virtual-size"`
		BackingFilename string `json:"backing-filename"`
		FormatSpecific  struct {
			Data struct {
				DataFile string `json:"data-file"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(output, &info); err != nil {
		return Result{}, fmt.Errorf("qcow2 image: qemu-img info: %v: %w", err, ErrInvalidImage)
	}
	if info.BackingFilename != "" || info.FormatSpecific.Data.DataFile != "" {
		return Result{}, fmt.Errorf("qcow2 image with a backing file or an external data file (flatten it first): %w", ErrUnsupported)
	}
	// A truncated or damaged image converts without a word (what is
	// missing reads as zeros); its metadata check says what is wrong. Exit
	// status 3 is only leaked clusters, harmless.
	if _, err := qemu(3, nil, "check", "-f", "qcow2", src.Name()); err != nil {
		return Result{}, err
	}
	if err := out.Truncate(info.VirtualSize); err != nil {
		return Result{}, err
	}
	o.log.Info("qemu-img convert to raw", "bytes", info.VirtualSize)
	// -n: out exists (made by Import), and is all holes.
	args := []string{"convert", "-n", "--target-is-zero", "-f", "qcow2", "-O", "raw", src.Name(), out.Name()}
	var meter *qemuImgProgress
	var progress io.Writer // nil: qemu-img's output is not read
	if o.progress != nil {
		stat, err := src.Stat()
		if err != nil {
			return Result{}, err
		}
		meter = &qemuImgProgress{total: stat.Size(), report: o.progress}
		progress = meter
		args = append([]string{"convert", "-p"}, args[1:]...)
	}
	if _, err := qemu(0, progress, args...); err != nil {
		return Result{}, err
	}
	if meter != nil {
		meter.report(meter.total, meter.total) // converted: the whole source has been read
	}
	converted, err := os.Open(out.Name()) // out is write-only
	if err != nil {
		return Result{}, err
	}
	defer converted.Close()
	head := make([]byte, superblockReadSize)
	if _, err := converted.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return Result{}, err
	}
	content := Format(superblock(head).fs) // the raw formats are named as the filesystems are
	if content == "" && hasPartitionTable(head) {
		content = FormatDisk
	}
	if content == "" {
		return Result{}, fmt.Errorf("qcow2 image holds no ext4, xfs or btrfs filesystem and no partition table: %w", ErrUnknownFormat)
	}
	return sizeRaw(ctx, out, info.VirtualSize, o, Result{Format: FormatQcow2, Content: content})
}

// qemuImgProgress turns what `qemu-img convert -p` prints — "(12.50/100%)"
// at each step, separated by carriage returns — into WithProgress reports
// of that share of the source file.
type qemuImgProgress struct {
	total   int64
	report  func(done, total int64)
	pending []byte
	last    int64
}

var qemuImgPercent = regexp.MustCompile(`\((\d+(?:\.\d+)?)/100%\)`)

func (p *qemuImgProgress) Write(b []byte) (int, error) {
	p.pending = append(p.pending, b...)
	end := bytes.LastIndexByte(p.pending, ')')
	if end < 0 {
		return len(b), nil
	}
	for _, m := range qemuImgPercent.FindAllSubmatch(p.pending[:end+1], -1) {
		pct, err := strconv.ParseFloat(string(m[1]), 64)
		if done := int64(pct / 100 * float64(p.total)); err == nil && done > p.last && done <= p.total {
			p.last = done
			p.report(done, p.total)
		}
	}
	p.pending = append(p.pending[:0], p.pending[end+1:]...)
	return len(b), nil
}
