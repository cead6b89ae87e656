package mounts

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Mount
		err  string // substring of the error; "" means success
	}{
		{
			name: "optional field",
			in:   "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
			want: []Mount{{ID: 36, Parent: 35, Point: "/mnt2", FSType: "ext3", Source: "/dev/root", Options: "rw,noatime"}},
		},
		{
			name: "no optional fields",
			in:   "22 1 0:21 / /proc rw,nosuid - proc proc rw",
			want: []Mount{{ID: 22, Parent: 1, Point: "/proc", FSType: "proc", Source: "proc", Options: "rw,nosuid"}},
		},
		{
			name: "several optional fields",
			in:   "40 22 0:5 / /a rw shared:5 master:3 propagate_from:2 unbindable - tmpfs none rw",
			want: []Mount{{ID: 40, Parent: 22, Point: "/a", FSType: "tmpfs", Source: "none", Options: "rw"}},
		},
		{
			name: "escapes",
			in:   `50 1 0:5 / /k/a\040b/t\011ab/n\012l/b\134s rw - tmpfs my\040src rw`,
			want: []Mount{{ID: 50, Parent: 1, Point: "/k/a b/t\tab/n\nl/b\\s", FSType: "tmpfs", Source: "my src", Options: "rw"}},
		},
		{
			name: "blank lines skipped",
			in:   "\n1 1 0:1 / / rw - ext4 /dev/sda rw\n\n",
			want: []Mount{{ID: 1, Parent: 1, Point: "/", FSType: "ext4", Source: "/dev/sda", Options: "rw"}},
		},
		{name: "empty input", in: "", want: nil},
		{name: "too few fields", in: "1 2 3", err: "line 1"},
		{name: "not numeric id", in: "x 1 0:1 / /a rw - t s rw", err: `"x" is not a mount ID`},
		{name: "negative parent", in: "1 -1 0:1 / /a rw - t s rw", err: "parent ID"},
		{name: "missing separator", in: "1 2 0:1 / /a rw shared:1 t s rw", err: "missing - separator"},
		{name: "bad major minor", in: "1 2 01 / /a rw - t s rw", err: "major:minor"},
		{name: "relative point", in: "1 2 0:1 / a rw - t s rw", err: "not an absolute clean path"},
		{name: "unclean point", in: "1 2 0:1 / /a/../b rw - t s rw", err: "not an absolute clean path"},
		{name: "bad second line", in: "1 1 0:1 / / rw - t s rw\ngarbage\n", err: `line 2 "garbage"`},
		{name: "duplicate id", in: "1 1 0:1 / / rw - t s rw\n1 1 0:1 / /b rw - t s rw\n", err: "already used on line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseLongLine(t *testing.T) {
	// An overlay with hundreds of layers: longer than the library's scanner
	// takes in one piece.
	opts := "lowerdir=" + strings.Repeat("/var/lib/containerd/snapshots/123/fs:", 2000)
	in := "1 1 0:1 / / rw - ext4 /dev/sda rw\n2 1 0:2 / /run/c rw - overlay overlay " + opts + "\n"
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(got) != 2 || got[1].Point != "/run/c" || got[1].FSType != "overlay" {
		t.Fatalf("Parse = %+v", got)
	}
}

func TestParseFixture(t *testing.T) {
	f, err := os.Open("testdata/mountinfo.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(ms) != 9 {
		t.Fatalf("got %d mounts, want 9", len(ms))
	}
	if p := ms[4].Point; p != "/var/lib/kubelet/pods/a/volumes/kubernetes.io~csi/pvc one/mount" {
		t.Errorf("escaped point = %q", p)
	}
	if p := ms[8].Point; p != "/mnt/with\ttab\nnl\\bs" {
		t.Errorf("escaped point = %q", p)
	}
}

// format writes mounts back as mountinfo, escaping what the kernel escapes.
func format(ms []Mount) string {
	esc := strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`, "\r", `\015`)
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%d %d 0:0 / %s %s - %s %s rw\n", m.ID, m.Parent, esc.Replace(m.Point), m.Options, esc.Replace(m.FSType), esc.Replace(m.Source))
	}
	return b.String()
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/mountinfo.txt"); err == nil {
		f.Add(string(b))
		for _, l := range strings.Split(string(b), "\n") {
			f.Add(l)
		}
	}
	f.Add(`1 2 0:1 / /a\040b rw - t s rw`)
	f.Add("1 2 0:1 / /a rw a b c - t s\\ rw")
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		ids := map[int]bool{}
		for _, m := range ms {
			if !strings.HasPrefix(m.Point, "/") {
				t.Fatalf("point %q not absolute", m.Point)
			}
			if ids[m.ID] {
				t.Fatalf("duplicate id %d accepted", m.ID)
			}
			ids[m.ID] = true
		}
		again, err := Parse(strings.NewReader(format(ms)))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", format(ms), err)
		}
		if len(ms) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(ms, again) {
			t.Fatalf("round trip:\n%+v\n%+v", ms, again)
		}
	})
}
