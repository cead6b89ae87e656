#!/usr/bin/env bash
# Builds the real etcd and kube-apiserver that the cluster-side tests run,
# from the Go module proxy, into .cache/bin/<name>-<version>. Each lives in a
# module of its own under tools/, so the product's go.mod stays clean. A
# binary already built for its version is kept (the first build of
# kube-apiserver takes about 6 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=-modcacherw CGO_ENABLED=0
mkdir -p .cache/bin
build() { # name version
  local out=.cache/bin/$1-$2
  if [ -x "$out" ]; then return; fi
  echo "building $1 $2 (once; cached in $out)"
  (cd tools/$1 && go build -trimpath -o "../../$out.tmp" .)
  mv "$out.tmp" "$out"
}
build etcd v3.6.7
build kube-apiserver v1.37.2
