package mounts

import (
	"path"
	"sort"
)

// Tree indexes a mount table by ID so that unmounting can follow the kernel's
// parent links instead of guessing an order from path names.
type Tree struct {
	mounts   []Mount
	byID     map[int]int
	byPoint  map[string][]int
	children map[int][]int
}

// NewTree indexes mounts, which must come from one mountinfo read (IDs are
// unique there, and only there: the kernel reuses them).
func NewTree(mounts []Mount) *Tree {
	t := &Tree{mounts: mounts, byID: make(map[int]int, len(mounts)), byPoint: make(map[string][]int, len(mounts)), children: map[int][]int{}}
	for i, m := range mounts {
		t.byID[m.ID] = i
		t.byPoint[m.Point] = append(t.byPoint[m.Point], i)
	}
	for i, m := range mounts {
		if m.Parent != m.ID {
			t.children[m.Parent] = append(t.children[m.Parent], i)
		}
	}
	return t
}

// Get returns the mount with the given ID.
func (t *Tree) Get(id int) (Mount, bool) {
	i, ok := t.byID[id]
	if !ok {
		return Mount{}, false
	}
	return t.mounts[i], true
}

// Children returns the mounts whose parent is id, in mountinfo order. A
// mount stacked on another's mount point is its child.
func (t *Tree) Children(id int) []Mount {
	idx := t.children[id]
	out := make([]Mount, len(idx))
	for i, j := range idx {
		out[i] = t.mounts[j]
	}
	return out
}

// Ancestor reports whether a is a proper ancestor of b.
func (t *Tree) Ancestor(a, b int) bool {
	cur, ok := t.Get(b)
	// The step bound stops a malformed table with a parent cycle.
	for steps := 0; ok && steps <= len(t.mounts); steps++ {
		if cur.Parent == cur.ID {
			return false
		}
		if cur.Parent == a {
			return true
		}
		cur, ok = t.Get(cur.Parent)
	}
	return false
}

// index returns the position of id in mountinfo order, or -1.
func (t *Tree) index(id int) int {
	if i, ok := t.byID[id]; ok {
		return i
	}
	return -1
}

// blockers returns the mounts that must be gone before m can be unmounted
// by path: its children, and the mounts that shadow it (mounted later at or
// above its point without being its ancestor, so its path now leads into
// them). Unmounting by path before they are gone would hit the wrong mount.
func (t *Tree) blockers(m Mount) (children, shadows []Mount) {
	children = t.Children(m.ID)
	mi := t.index(m.ID)
	// Only mounts at m's point or at one of its parent directories can
	// shadow it: look those up instead of scanning the whole table, which
	// made ordering quadratic in the number of mounts.
	for _, dir := range pathAndParents(m.Point) {
		for _, i := range t.byPoint[dir] {
			y := t.mounts[i]
			if y.ID == m.ID || y.Parent == m.ID {
				continue
			}
			if y.Point == m.Point {
				// Side by side on one point: the later one is on top.
				if i < mi || t.Ancestor(y.ID, m.ID) || t.Ancestor(m.ID, y.ID) {
					continue
				}
			} else if t.Ancestor(y.ID, m.ID) {
				continue
			}
			shadows = append(shadows, y)
		}
	}
	sort.Slice(shadows, func(a, b int) bool { return t.index(shadows[a].ID) < t.index(shadows[b].ID) })
	return children, shadows
}

// pathAndParents returns p and every parent directory of p up to "/".
func pathAndParents(p string) []string {
	out := []string{p}
	for p != "/" && p != "" {
		p = path.Dir(p)
		out = append(out, p)
	}
	return out
}
