package storage

import (
	"context"
	"errors"
	"testing"
)

func TestMetaIsRecordedOnceAndKeptAcrossOpens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	calls := 0
	first := func() (string, error) { calls++; return "a", nil }
	if v, err := s.Meta(ctx, "instance", first); err != nil || v != "a" {
		t.Fatalf("first Meta = %q, %v", v, err)
	}
	if v, err := s.Meta(ctx, "instance", func() (string, error) { return "b", nil }); err != nil || v != "a" || calls != 1 {
		t.Fatalf("second Meta = %q, %v (init called %d times); want the recorded a", v, err, calls)
	}
	if _, err := s.Meta(ctx, "other", func() (string, error) { return "", errors.New("no") }); err == nil {
		t.Error("Meta hid init's error")
	}
	if err := s.SetMeta(ctx, "instance", "c"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir)
	if v, err := s.Meta(ctx, "instance", first); err != nil || v != "c" || calls != 1 {
		t.Errorf("after reopening: %q, %v; want c", v, err)
	}
	if _, err := s.Meta(ctx, "other", func() (string, error) { return "", errors.New("no") }); err == nil {
		t.Error("a failed init was recorded")
	}
}
