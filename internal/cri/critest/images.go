package critest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Image references the harness imports; the pause image is the runtime's
// sandbox image, so nothing is ever pulled.
const (
	PauseImage   = "nodesim.local/pause:1"
	BusyboxImage = "nodesim.local/busybox:1"
	// ToolsImage is a second image (same layer, its own config and ID),
	// in the k8s.io namespace only, for tests that tell images apart.
	ToolsImage = "nodesim.local/tools:1"
)

// Busybox is where busybox-static installs the binary both images are
// made of.
const Busybox = "/bin/busybox"

// applets are linked in the images; the pods use only these.
var applets = []string{"sh", "sleep", "httpd", "cat", "ls", "echo", "true"}

// TermLoop is a PID-1 shell loop that exits on SIGTERM (a bare sleep as PID
// 1 of a PID namespace ignores it), so a container stops at once when the
// runtime asks.
const TermLoop = `trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done`

// ociImage builds a one-layer OCI image-layout tar from busybox with only
// archive/tar, gzip and sha256, deterministically (same digest each time).
func ociImage(ref string, entrypoint, cmd []string) ([]byte, error) {
	bb, err := os.ReadFile(Busybox)
	if err != nil {
		return nil, fmt.Errorf("read %s (install busybox-static): %w", Busybox, err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	hdr := func(h *tar.Header) {
		h.ModTime, h.Uid, h.Gid, h.Format = time.Unix(0, 0), 0, 0, tar.FormatPAX
		_ = tw.WriteHeader(h)
	}
	for _, d := range []string{"bin/", "tmp/", "etc/", "proc/", "sys/", "dev/", "vol/"} {
		hdr(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755})
	}
	hdr(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))})
	_, _ = tw.Write(bb)
	for _, a := range applets {
		hdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777})
	}
	passwd := []byte("root:x:0:0:root:/:/bin/sh\n")
	hdr(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))})
	_, _ = tw.Write(passwd)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	diffID := sum(layer.Bytes())
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	_, _ = zw.Write(layer.Bytes())
	if err := zw.Close(); err != nil {
		return nil, err
	}

	blobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		d := sum(b)
		blobs[d] = b
		return d, len(b)
	}
	ldig, lsize := add(gz.Bytes())
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": "/"},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + diffID}},
	})
	cdig, csize := add(cfg)
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cdig, "size": csize},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + ldig, "size": lsize}},
	})
	mdig, msize := add(man)
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json",
			"digest": "sha256:" + mdig, "size": msize,
			"platform":    map[string]string{"architecture": "amd64", "os": "linux"},
			"annotations": map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": "1"}}},
	})

	var out bytes.Buffer
	ow := tar.NewWriter(&out)
	file := func(name string, b []byte) {
		_ = ow.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)})
		_, _ = ow.Write(b)
	}
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	file("index.json", index)
	for _, d := range []string{ldig, cdig, mdig} {
		file("blobs/sha256/"+d, blobs[d])
	}
	if err := ow.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
