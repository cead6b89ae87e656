package mounts

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func points(ms []Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Point)
	}
	return out
}

func TestSelect(t *testing.T) {
	table := []Mount{
		{ID: 1, Parent: 1, Point: "/"},
		{ID: 2, Parent: 1, Point: "/var/lib"},
		{ID: 3, Parent: 2, Point: "/var/lib/kubelet"},
		{ID: 4, Parent: 3, Point: "/var/lib/kubelet/pods/a"},
		{ID: 5, Parent: 4, Point: "/var/lib/kubelet/pods/a"},
		{ID: 6, Parent: 2, Point: "/var/lib/kubelet-old"},
		{ID: 7, Parent: 6, Point: "/var/lib/kubelet-old/pods/b"},
		{ID: 8, Parent: 2, Point: "/var/lib/kubeletx/y"},
		{ID: 9, Parent: 1, Point: "/run/k3s/containerd/x"},
	}
	tests := []struct {
		name  string
		roots []string
		want  []string
	}{
		{"kubelet root", []string{"/var/lib/kubelet"}, []string{"/var/lib/kubelet/pods/a", "/var/lib/kubelet/pods/a"}},
		{"trailing slash", []string{"/var/lib/kubelet/"}, []string{"/var/lib/kubelet/pods/a", "/var/lib/kubelet/pods/a"}},
		{"two roots", []string{"/run/k3s", "/var/lib/kubelet"}, []string{"/var/lib/kubelet/pods/a", "/var/lib/kubelet/pods/a", "/run/k3s/containerd/x"}},
		{"overlapping roots select once", []string{"/var/lib/kubelet", "/var/lib/kubelet/pods"}, []string{"/var/lib/kubelet/pods/a", "/var/lib/kubelet/pods/a"}},
		{"slash root skips itself", []string{"/"}, []string{"/var/lib", "/var/lib/kubelet", "/var/lib/kubelet/pods/a", "/var/lib/kubelet/pods/a", "/var/lib/kubelet-old", "/var/lib/kubelet-old/pods/b", "/var/lib/kubeletx/y", "/run/k3s/containerd/x"}},
		{"relative root ignored", []string{"var/lib/kubelet"}, nil},
		{"no roots", nil, nil},
		{"root itself only", []string{"/var/lib/kubelet/pods/a"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := points(Select(table, tt.roots)); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Select(%v) = %q, want %q", tt.roots, got, tt.want)
			}
		})
	}
}

func TestTree(t *testing.T) {
	// 10 is over 12's parent directory: 12 is shadowed by 10.
	tr := NewTree([]Mount{
		{ID: 1, Parent: 1, Point: "/"},
		{ID: 2, Parent: 1, Point: "/k"},
		{ID: 3, Parent: 2, Point: "/k/a"},
		{ID: 4, Parent: 3, Point: "/k/a"},
		{ID: 12, Parent: 2, Point: "/k/b/c"},
		{ID: 10, Parent: 2, Point: "/k/b"},
	})
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"root ancestor of stacked", tr.Ancestor(1, 4), true},
		{"parent ancestor", tr.Ancestor(3, 4), true},
		{"not ancestor of itself", tr.Ancestor(4, 4), false},
		{"child not ancestor", tr.Ancestor(4, 3), false},
		{"sibling not ancestor", tr.Ancestor(10, 12), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	t.Run("blockers", func(t *testing.T) {
		m3, _ := tr.Get(3)
		ch, sh := tr.blockers(m3)
		if !reflect.DeepEqual(points(ch), []string{"/k/a"}) || len(sh) != 0 {
			t.Fatalf("blockers(3) = %v %v", ch, sh)
		}
		m12, _ := tr.Get(12)
		ch, sh = tr.blockers(m12)
		if len(ch) != 0 || len(sh) != 1 || sh[0].ID != 10 {
			t.Fatalf("blockers(12) = %v %v, want shadow 10", ch, sh)
		}
	})
}

// synthetic builds a mountinfo of n mounts, a third of them below the
// kubelet root, a few next to it.
func synthetic(n int) string {
	var b strings.Builder
	b.WriteString("1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n")
	b.WriteString("2 1 8:2 / /var/lib/kubelet rw shared:2 - ext4 /dev/sdb1 rw\n")
	for i := 3; i <= n; i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "%d 2 0:%d / /var/lib/kubelet/pods/p%d/volumes/kubernetes.io~empty-dir/v\\040%d rw,relatime shared:%d - tmpfs tmpfs rw,size=1024k\n", i, i, i, i, i)
		case 1:
			fmt.Fprintf(&b, "%d 1 0:%d / /var/lib/kubelet-old/p%d rw,relatime - tmpfs tmpfs rw\n", i, i, i)
		default:
			fmt.Fprintf(&b, "%d 1 0:%d / /run/containerd/io.containerd.runtime.v2.task/k8s.io/%d/rootfs rw - overlay overlay rw,lowerdir=/a:/b,upperdir=/c,workdir=/d\n", i, i, i)
		}
	}
	return b.String()
}

func TestSynthetic(t *testing.T) {
	ms, err := Parse(strings.NewReader(synthetic(1000)))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(Select(ms, []string{"/var/lib/kubelet"})); got != 333 {
		t.Fatalf("selected %d, want 333", got)
	}
}

func BenchmarkSelect(b *testing.B) {
	in := synthetic(1000)
	b.ReportAllocs()
	for b.Loop() {
		ms, err := Parse(strings.NewReader(in))
		if err != nil {
			b.Fatal(err)
		}
		if len(Select(ms, []string{"/var/lib/kubelet"})) == 0 {
			b.Fatal("nothing selected")
		}
	}
}
