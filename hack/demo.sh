#!/usr/bin/env bash
# make demo: build a sandbox kubeadm node in private namespaces, show the plan,
# reset it, verify it, show that the decoys survived, tear it down.
# Nothing outside the sandbox's own namespaces and temp dir is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "make demo needs root: the sandbox node lives in new mount, PID and network namespaces" >&2
  exit 2
fi
command -v nsenter >/dev/null || { echo "make demo needs nsenter (Debian package util-linux)" >&2; exit 2; }

work=$(mktemp -d /tmp/nodereset-demo.XXXXXX)
state=$work/state root=$work/root
cleanup() {
  if [ -f "$state/init.pid" ]; then bin/nodesim down --state "$state"; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m### %s\033[0m\n' "$*"; }
inside() { bin/nodesim exec --state "$state" -- "$PWD/bin/nodereset" --host-root "$root" "$@"; }

# Real containerd pods (static and DaemonSet pods holding ports), a flannel-
# and kube-proxy-style network next to a host firewall; DEMO_WITH=docker adds
# a real dockerd with RKE1 containers (slower to start).
with=${DEMO_WITH:-network,containerd}
step "Building a sandbox kubeadm node at $root (5 pods with 4 volumes each; with $with)"
bin/nodesim up --root "$root" --state "$state" --pods 5 --volumes 4 --with "$with"

step "nodereset verify, before: the rejoin would fail (ports held, join files present)"
# (the residue, every item the plan below lists, is left out here)
if inside verify | grep -v '^  residue:'; then echo "unexpected: the dirty node verified clean" >&2; exit 1; fi

step "nodereset plan"
inside plan

step "nodereset reset --yes (the plan above is printed again; shown from the progress on)"
# etcd here ignores SIGTERM: the process phase shows the escalation to KILL.
inside reset --yes --term-timeout 2s | sed -n '/^Applied/,$p'

step "nodereset verify"
inside verify && echo "verify exit code: 0"

step "Decoys: user files, processes, mounts, listeners and units"
bin/nodesim check --state "$state" && echo "every decoy is intact"

step "A second reset has nothing to do"
inside reset --yes

step "Tearing the sandbox down"
