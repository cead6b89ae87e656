package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nodereset/nodereset/pkg/plan"
	"golang.org/x/sys/unix"
)

// builder plants host-side paths under root and records them in the
// manifest. The first error sticks and turns every later step into a no-op,
// so layout code reads as a list of steps instead of a ladder of ifs.
type builder struct {
	root string
	m    *Manifest
	err  error
}

func (b *builder) fail(err error) {
	if b.err == nil && err != nil {
		b.err = err
	}
}

func (b *builder) path(p string) string { return filepath.Join(b.root, p) }

func (b *builder) dir(p string) {
	if b.err == nil {
		b.fail(os.MkdirAll(b.path(p), 0o755))
	}
}

func (b *builder) file(p, content string, mode os.FileMode) {
	b.dir(filepath.Dir(p))
	if b.err == nil {
		b.fail(os.WriteFile(b.path(p), []byte(content), mode))
	}
}

func (b *builder) link(p, target string) {
	b.dir(filepath.Dir(p))
	if b.err == nil {
		b.fail(os.Symlink(target, b.path(p)))
	}
}

// decoyFile plants a user file and records its digest.
func (b *builder) decoyFile(p, content string) {
	b.file(p, content, 0o644)
	b.m.Decoys.Files = append(b.m.Decoys.Files, decoyDigest(p, content))
}

func decoyDigest(p, content string) DecoyFile {
	return DecoyFile{Path: p, SHA256: digest([]byte(content))}
}

// digest is the hex SHA-256 of b.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// decoyLink plants a user symlink and records its target.
func (b *builder) decoyLink(p, target string) {
	b.link(p, target)
	b.m.Decoys.Files = append(b.m.Decoys.Files, DecoyFile{Path: p, Link: target})
}

// unit plants a unit file and its multi-user.target.wants symlink.
func (b *builder) unit(file, content string) (wants string) {
	b.file(file, content, 0o644)
	wants = "/etc/systemd/system/multi-user.target.wants/" + filepath.Base(file)
	b.link(wants, file)
	return wants
}

func (b *builder) expect(k plan.Kind, target string) {
	b.m.Expected = append(b.m.Expected, Item{Kind: k, Target: target})
}

// mount mounts at host path p (created as a directory first). src is a
// host path for bind mounts and a device name otherwise.
func (b *builder) mount(src, p, fstype string, flags uintptr, data string) {
	b.dir(p)
	if b.err != nil {
		return
	}
	if flags&unix.MS_BIND != 0 {
		src = b.path(src)
	}
	if err := unix.Mount(src, b.path(p), fstype, flags, data); err != nil {
		b.fail(fmt.Errorf("mount %s on %s: %w", src, b.path(p), err))
	}
}

func (b *builder) tmpfs(p string) { b.mount("tmpfs", p, "tmpfs", 0, "mode=755,size=4m") }

func (b *builder) bind(src, p string) { b.mount(src, p, "", unix.MS_BIND, "") }
