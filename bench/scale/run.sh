#!/usr/bin/env bash
# Runs the scale bench on a bare x86-64 Linux machine from the pack made by
# bench/scale/pack.sh (node, nats-server and Sandbar with its runtime
# modules; no Node.js, npm or network needed there):
#
#   OUT=/some/dir bash <pack>/run.sh [scale.js flags, e.g. --target 2000000]
#   BENCH=dm OUT=/some/dir bash <pack>/run.sh [dm.js flags, e.g. --targets sandbar --histograms on,off]
#
# Unpacks into $SCALE_DIR (default /tmp/scale), puts the carried node and
# nats-server first on PATH, runs dist/bench/scale.js, and leaves in $OUT:
# scale.json (every figure), scale.txt (the console output, ending with the
# SUMMARY line), host-warnings.txt (the host's warn/error log lines) and
# host-log-tail.txt (the end of its log).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEST=${SCALE_DIR:-/tmp/scale}
OUT=${OUT:-$DEST/out}

unxz_to_stdout() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1"
  elif command -v python3 >/dev/null 2>&1; then python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"
  else echo "run.sh: neither xz nor python3 is here to unpack $1" >&2; exit 1
  fi
}

rm -rf "$DEST"
mkdir -p "$DEST/bin" "$OUT"
unxz_to_stdout "$HERE/node.tar.xz" | tar -x -C "$DEST/bin"
unxz_to_stdout "$HERE/nats-server.xz" > "$DEST/bin/nats-server"
chmod 755 "$DEST/bin/nats-server" "$DEST/bin/node"
unxz_to_stdout "$HERE/sandbar.tar.xz" | tar -x -C "$DEST"
export PATH="$DEST/bin:$PATH"
hash -r
# The soft open-files limit is per process; take what the hard limit allows (the bench plans within whatever it gets).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cd "$DEST"
echo "run.sh: node $(command -v node) $(node --version), $("$DEST/bin/nats-server" --version), ulimit -n $(ulimit -n), $(nproc) cores, $(uname -srm)"

set +e
if [ "${BENCH:-scale}" = dm ]; then
  # The dm bench (bench/dm.ts) against Sandbar only: nats-server from PATH, every run's result in dm.json.
  node dist/bench/dm.js --log-dir "$DEST/logs" --json "$OUT/dm.json" "$@" 2>&1 | tee "$OUT/dm.txt"
else
  node dist/bench/scale.js --nats-server "$DEST/bin/nats-server" --log-dir "$DEST/logs" --out "$OUT/scale.json" "$@" 2>&1 | tee "$OUT/scale.txt"
fi
rc=${PIPESTATUS[0]}
if [ -f "$DEST/logs/host.log" ]; then
  grep -E '"level":(40|50|60)' "$DEST/logs/host.log" | tail -c 4000000 > "$OUT/host-warnings.txt"
  tail -c 4000000 "$DEST/logs/host.log" > "$OUT/host-log-tail.txt"
fi
exit "$rc"
