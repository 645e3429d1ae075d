// kernels/blas-probe.js — finds OpenBLAS for both native builds (binding.gyp and
// kernels/CMakeLists.txt), so the addon and the test binary always agree on the GEMM.
//
//   node kernels/blas-probe.js kind     → "openblas" or "none" (the portable GEMM)
//   node kernels/blas-probe.js include  → the directory of OpenBLAS's cblas.h, or ""
//   node kernels/blas-probe.js libs     → the linker flags (-L… -Wl,-rpath,… -lopenblas), or ""
//
// Looks first where `pkg-config openblas` points, then in the usual install places. Only a
// cblas.h that declares openblas_set_num_threads counts (the engine keeps OpenBLAS at one
// thread). SIEVE_BLAS=none forces the portable GEMM.
'use strict';
const fs = require('fs');
const cp = require('child_process');

const isOpenblasHeaderDir = (dir) => {
  try {
    return fs.readFileSync(`${dir}/cblas.h`, 'utf8').includes('openblas_set_num_threads');
  } catch {
    return false;
  }
};
const linkFlags = (dirs) => dirs.map((d) => `-L${d} -Wl,-rpath,${d}`).concat(['-lopenblas']).join(' ');

function fromPkgConfig() {
  let flags;
  try {
    flags = cp.execSync('pkg-config --cflags-only-I --libs openblas', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split(' ').map((s) => s.trim()).filter(Boolean);
  } catch {
    return null; // no pkg-config, or no openblas.pc
  }
  const include = flags.filter((s) => s.startsWith('-I')).map((s) => s.slice(2)).concat(['/usr/include']).find(isOpenblasHeaderDir);
  if (!include) return null;
  return { include, libs: linkFlags(flags.filter((s) => s.startsWith('-L')).map((s) => s.slice(2))) };
}

function fromUsualPlaces() {
  const include = ['/usr/include/x86_64-linux-gnu/openblas-pthread', '/usr/include/openblas', '/usr/include/x86_64-linux-gnu', '/usr/include', '/usr/local/include', '/opt/homebrew/opt/openblas/include'].find(isOpenblasHeaderDir);
  const lib = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/opt/homebrew/opt/openblas/lib'].find(
    (d) => fs.existsSync(`${d}/libopenblas.so`) || fs.existsSync(`${d}/libopenblas.dylib`),
  );
  return include && lib ? { include, libs: linkFlags([lib]) } : null;
}

const found = process.env.SIEVE_BLAS === 'none' ? null : (fromPkgConfig() ?? fromUsualPlaces());
const field = process.argv[2];
const answers = { kind: found ? 'openblas' : 'none', include: found ? found.include : '', libs: found ? found.libs : '' };
if (!Object.hasOwn(answers, field ?? "")) {
  process.stderr.write(`usage: node kernels/blas-probe.js kind|include|libs (got ${JSON.stringify(field)})\n`);
  process.exit(2);
}
console.log(answers[field]);
