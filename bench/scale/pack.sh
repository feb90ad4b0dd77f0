#!/usr/bin/env bash
# Packs what the scale bench needs on a bare x86-64 Linux machine (no Node.js,
# no network) into <outdir>, at most 60 MiB:
#
#   node.tar.xz      the node binary on PATH here (readlink -f $(which node))
#   nats-server.xz   the nats-server on PATH here
#   sandbar.tar.xz   dist/ (built now), web/ (the pages), package.json and the production
#                    node_modules (npm ci --omit=dev in a temporary copy),
#                    plus the bench client's runtime modules (hdr-histogram-js
#                    and its dependencies, copied from this worktree)
#   run.sh           unpacks into /tmp/scale and runs dist/bench/scale.js
#
#   bench/scale/pack.sh scale-pack && OUT=/tmp/out bash scale-pack/run.sh --target 20000 --workers 4 --clients 4
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 <outdir>" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

NODE=$(readlink -f "$(command -v node)")
NATS=$(readlink -f "$(command -v nats-server)")
file_type=$(head -c 4 "$NODE" | od -An -c | tr -d ' ')
[ "$file_type" = "177ELF" ] || { echo "pack.sh: $NODE is not an ELF binary" >&2; exit 1; }
[ "$(uname -m)" = "x86_64" ] || echo "pack.sh: warning: this machine is $(uname -m); the target machine is x86-64" >&2

(cd "$ROOT" && npm run -s build)

mkdir "$TMP/nodebin"
cp "$NODE" "$TMP/nodebin/node"
tar -C "$TMP/nodebin" -cf - node | xz -T0 -9 > "$OUTDIR/node.tar.xz"
xz -T0 -9 -c "$NATS" > "$OUTDIR/nats-server.xz"

mkdir "$TMP/app"
cp -r "$ROOT/dist" "$ROOT/web" "$ROOT/package.json" "$ROOT/package-lock.json" "$TMP/app/"
(cd "$TMP/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
# The bench client's own runtime modules are dev dependencies of Sandbar.
for m in hdr-histogram-js @assemblyscript/loader base64-js pako; do
  if [ ! -d "$TMP/app/node_modules/$m" ]; then
    mkdir -p "$(dirname "$TMP/app/node_modules/$m")"
    cp -r "$ROOT/node_modules/$m" "$TMP/app/node_modules/$m"
  fi
done
tar -C "$TMP/app" --exclude='*.map' -cf - dist web package.json node_modules | xz -T0 -9 > "$OUTDIR/sandbar.tar.xz"
cp "$ROOT/bench/scale/run.sh" "$OUTDIR/run.sh"
chmod 755 "$OUTDIR/run.sh"

total=$(du -cb "$OUTDIR"/node.tar.xz "$OUTDIR"/nats-server.xz "$OUTDIR"/sandbar.tar.xz "$OUTDIR"/run.sh | tail -1 | cut -f1)
ls -l "$OUTDIR"
echo "pack.sh: $((total / 1048576)) MiB in $OUTDIR (node $("$NODE" --version), $("$NATS" --version))"
[ "$total" -le $((60 * 1048576)) ] || { echo "pack.sh: the pack is over 60 MiB" >&2; exit 1; }
