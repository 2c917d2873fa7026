package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// checkOutPath refuses a file the CLI is asked to write (--out) when it is
// a symbolic link or not a regular file. Writing through a link would let
// whoever planted it choose which file we overwrite; we never follow one,
// and there is no flag to: the operator gives the real path instead.
func checkOutPath(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link and partyline does not write through links: remove it or give the path of the file itself", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s exists and is not a regular file: give the path of a file to write", path)
	}
	return nil
}

// writeFileAtomic writes data to path whole or not at all: into a new temp
// file of path's directory (created with O_EXCL under a random name, so
// nothing planted there is followed or reused), synced, then renamed over
// path. A path that is a symbolic link is refused (checkOutPath); one planted
// between that check and the rename is replaced, not followed.
func writeFileAtomic(path string, data []byte) (err error) {
	if err := checkOutPath(path); err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.partial")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := checkOutPath(path); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is on disk too.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
