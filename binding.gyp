# binding.gyp — builds the N-API addon build/Release/sieve.node (target `sieve`).
#
# `npm install` runs `node-gyp rebuild` with Node's own headers: nothing is downloaded.
# The engine is the backend-neutral core (kernels/core) and the CPU backend (kernels/cpu),
# compiled into the addon with the binding. OpenBLAS is found by kernels/blas-probe.js (the
# same probe kernels/CMakeLists.txt runs); without it the portable GEMM is compiled in and
# kernels/index.ts announces that once on stderr. SIEVE_BLAS=none forces the portable
# GEMM; SIEVE_AVX2=0 builds without AVX2 (it is used only when the build host has it).
# The flags match kernels/CMakeLists.txt: -O3, OpenMP, and no FMA contraction so the
# engine's elementwise maths gives the same bits with or without AVX2.
{
  'variables': {
    'sieve_blas%': '<!(node kernels/blas-probe.js kind)',
    'sieve_blas_include%': '<!(node kernels/blas-probe.js include)',
    'sieve_avx2%': '<!(node -e "let a=\'no\';try{if(process.env.SIEVE_AVX2!==\'0\'&&process.arch===\'x64\'&&require(\'fs\').readFileSync(\'/proc/cpuinfo\',\'utf8\').includes(\' avx2\'))a=\'yes\'}catch(e){}console.log(a)")',
  },
  'targets': [
    {
      'target_name': 'sieve',
      'sources': [
        'kernels/napi/binding.cc',
        '<!@(node -p "[\'kernels/core\',\'kernels/cpu\'].flatMap(d=>require(\'fs\').readdirSync(d).filter(f=>f.endsWith(\'.cc\')).sort().map(f=>d+\'/\'+f)).join(\' \')")',
      ],
      'include_dirs': ['kernels/include', 'kernels'],
      'dependencies': ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      'defines': ['NAPI_VERSION=8', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
      'cflags_cc': ['-fopenmp', '-ffp-contract=off', '-fno-math-errno', '-fno-trapping-math'],
      'ldflags': ['-fopenmp', '-ldl'],
      'conditions': [
        ['sieve_blas=="openblas"', {
          'defines': ['SIEVE_HAVE_OPENBLAS'],
          'include_dirs': ['<(sieve_blas_include)'],
          'libraries': ['<!@(node kernels/blas-probe.js libs)'],
        }],
        ['sieve_avx2=="yes"', {
          'cflags_cc': ['-mavx2'],
        }],
      ],
    },
  ],
}
