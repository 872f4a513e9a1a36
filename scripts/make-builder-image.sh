#!/usr/bin/env bash
# Builds a local stand-in for golang:*-alpine — the Go toolchain and a musl C
# toolchain in one root filesystem — from this machine's parts, and imports
# it with podman. Upstream images cannot be pulled here; tests pin this one by
# its digest exactly as a user pins golang:1.22-alpine@sha256:….
#
#   scripts/make-builder-image.sh [NAME]    # prints NAME@sha256:<digest>
#
# The C compiler is Debian's musl-gcc (musl-tools), so the image sets
# CC=musl-gcc, as golang:*-alpine's gcc is musl's.
set -euo pipefail
name=${1:-localhost/kiln-builder-musl:$(go env GOVERSION)}
command -v podman >/dev/null || { echo "make-builder-image: podman is not installed (apt-get install -y podman)" >&2; exit 2; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# The Debian packages of the C toolchain and everything they depend on.
want="musl-tools musl-dev musl gcc gcc-12 cpp-12 binutils dash coreutils"
declare -A seen
queue=($want)
while [ ${#queue[@]} -gt 0 ]; do
  p=${queue[0]}; queue=("${queue[@]:1}")
  p=${p%%:*}
  [ -n "${seen[$p]:-}" ] && continue
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == *"install ok installed"* ]] || continue
  seen[$p]=1
  deps=$(dpkg-query -W -f='${Depends},${Pre-Depends}' "$p" 2>/dev/null | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$' || true)
  for d in $deps; do queue+=("$d"); done
done
# Copy each file to where it really is on this host (its directory with
# symlinks resolved: Debian 12 merges /bin, /lib, /lib64 into /usr), then
# recreate the top-level links the same way.
for p in "${!seen[@]}"; do
  dpkg -L "$p" 2>/dev/null | while read -r f; do
    if [ -f "$f" ] || [ -L "$f" ]; then
      d=$(readlink -f "$(dirname "$f")")
      mkdir -p "$root$d"
      cp -a "$f" "$root$d/" 2>/dev/null || true
    fi
  done
done
for d in bin sbin lib lib64; do
  if [ -L "/$d" ]; then ln -sfn "$(readlink "/$d")" "$root/$d"; fi
done
# /bin/sh is dash's, made by its maintainer script rather than listed.
[ -e "$root/usr/bin/sh" ] || ln -s dash "$root/usr/bin/sh"

# The Go toolchain, without its test data.
mkdir -p "$root/usr/local"
tar -C /usr/local --exclude='go/test' --exclude='go/api' --exclude='go/doc' -cf - go | tar -C "$root/usr/local" -xf -
mkdir -p "$root/tmp" "$root/src" && chmod 1777 "$root/tmp"

tar -C "$root" -cf - . | podman import \
  --change 'ENV PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV CC=musl-gcc' \
  --change 'ENV GOTOOLCHAIN=local' \
  --change 'WORKDIR /src' \
  - "$name" >/dev/null
digest=$(podman image inspect "$name" --format '{{.Digest}}')
echo "${name%%:*}@$digest"
