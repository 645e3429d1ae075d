# binding.gyp — builds the N-API addon build/Release/sieve.node (target `sieve`).
#
# `npm install` runs `node-gyp rebuild` with Node's own headers: nothing is downloaded.
# OpenBLAS is detected at configure time (pkg-config openblas, else an OpenBLAS cblas.h and
# libopenblas in the usual places); without it the portable GEMM is compiled in and
# kernels/index.ts announces that once on stderr. SIEVE_BLAS=none forces the portable
# GEMM; SIEVE_AVX2=0 builds without AVX2 (it is used only when the build host has it).
# The flags match kernels/CMakeLists.txt: -O3, OpenMP, and no FMA contraction so the
# engine's elementwise maths gives the same bits with or without AVX2.
{
  'variables': {
    'sieve_blas%': '<!(node -e "const fs=require(\'fs\'),cp=require(\'child_process\');const ok=p=>{try{return fs.readFileSync(p+\'/cblas.h\',\'utf8\').includes(\'openblas_set_num_threads\')}catch(e){return false}};let inc=null,lib=null;if(process.env.SIEVE_BLAS!==\'none\'){try{const o=cp.execSync(\'pkg-config --cflags-only-I --libs openblas\',{stdio:[\'ignore\',\'pipe\',\'ignore\']}).toString().split(\' \').map(s=>s.trim()).filter(Boolean);const d=o.filter(s=>s.startsWith(\'-I\')).map(s=>s.slice(2)).concat([\'/usr/include\']).find(ok);const L=o.filter(s=>s.startsWith(\'-L\')).map(s=>s.slice(2));if(d){inc=d;lib=L.map(x=>\'-L\'+x+\' -Wl,-rpath,\'+x).concat([\'-lopenblas\']).join(\' \')}}catch(e){}if(!inc){const d=[\'/usr/include/x86_64-linux-gnu/openblas-pthread\',\'/usr/include/openblas\',\'/usr/include/x86_64-linux-gnu\',\'/usr/include\',\'/usr/local/include\',\'/opt/homebrew/opt/openblas/include\'].find(ok);const l=[\'/usr/lib/x86_64-linux-gnu\',\'/usr/lib/aarch64-linux-gnu\',\'/usr/lib64\',\'/usr/lib\',\'/usr/local/lib\',\'/opt/homebrew/opt/openblas/lib\'].find(p=>fs.existsSync(p+\'/libopenblas.so\')||fs.existsSync(p+\'/libopenblas.dylib\'));if(d&&l){inc=d;lib=\'-L\'+l+\' -Wl,-rpath,\'+l+\' -lopenblas\'}}}console.log(inc?\'openblas\':\'none\')")',
    'sieve_blas_include%': '<!(node -e "const fs=require(\'fs\'),cp=require(\'child_process\');const ok=p=>{try{return fs.readFileSync(p+\'/cblas.h\',\'utf8\').includes(\'openblas_set_num_threads\')}catch(e){return false}};let inc=null,lib=null;if(process.env.SIEVE_BLAS!==\'none\'){try{const o=cp.execSync(\'pkg-config --cflags-only-I --libs openblas\',{stdio:[\'ignore\',\'pipe\',\'ignore\']}).toString().split(\' \').map(s=>s.trim()).filter(Boolean);const d=o.filter(s=>s.startsWith(\'-I\')).map(s=>s.slice(2)).concat([\'/usr/include\']).find(ok);const L=o.filter(s=>s.startsWith(\'-L\')).map(s=>s.slice(2));if(d){inc=d;lib=L.map(x=>\'-L\'+x+\' -Wl,-rpath,\'+x).concat([\'-lopenblas\']).join(\' \')}}catch(e){}if(!inc){const d=[\'/usr/include/x86_64-linux-gnu/openblas-pthread\',\'/usr/include/openblas\',\'/usr/include/x86_64-linux-gnu\',\'/usr/include\',\'/usr/local/include\',\'/opt/homebrew/opt/openblas/include\'].find(ok);const l=[\'/usr/lib/x86_64-linux-gnu\',\'/usr/lib/aarch64-linux-gnu\',\'/usr/lib64\',\'/usr/lib\',\'/usr/local/lib\',\'/opt/homebrew/opt/openblas/lib\'].find(p=>fs.existsSync(p+\'/libopenblas.so\')||fs.existsSync(p+\'/libopenblas.dylib\'));if(d&&l){inc=d;lib=\'-L\'+l+\' -Wl,-rpath,\'+l+\' -lopenblas\'}}}console.log(inc||\'\')")',
    'sieve_avx2%': '<!(node -e "let a=\'no\';try{if(process.env.SIEVE_AVX2!==\'0\'&&process.arch===\'x64\'&&require(\'fs\').readFileSync(\'/proc/cpuinfo\',\'utf8\').includes(\' avx2\'))a=\'yes\'}catch(e){}console.log(a)")',
  },
  'targets': [
    {
      'target_name': 'sieve',
      'sources': [
        'kernels/napi/binding.cc',
        '<!@(node -p "require(\'fs\').readdirSync(\'kernels/cpu\').filter(f=>f.endsWith(\'.cc\')).sort().map(f=>\'kernels/cpu/\'+f).join(\' \')")',
      ],
      'include_dirs': ['kernels/include', 'kernels/cpu'],
      'dependencies': ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      'defines': ['NAPI_VERSION=8', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
      'cflags_cc': ['-fopenmp', '-ffp-contract=off', '-fno-math-errno', '-fno-trapping-math'],
      'ldflags': ['-fopenmp'],
      'conditions': [
        ['sieve_blas=="openblas"', {
          'defines': ['SIEVE_HAVE_OPENBLAS'],
          'include_dirs': ['<(sieve_blas_include)'],
          'libraries': ['<!@(node -e "const fs=require(\'fs\'),cp=require(\'child_process\');const ok=p=>{try{return fs.readFileSync(p+\'/cblas.h\',\'utf8\').includes(\'openblas_set_num_threads\')}catch(e){return false}};let inc=null,lib=null;if(process.env.SIEVE_BLAS!==\'none\'){try{const o=cp.execSync(\'pkg-config --cflags-only-I --libs openblas\',{stdio:[\'ignore\',\'pipe\',\'ignore\']}).toString().split(\' \').map(s=>s.trim()).filter(Boolean);const d=o.filter(s=>s.startsWith(\'-I\')).map(s=>s.slice(2)).concat([\'/usr/include\']).find(ok);const L=o.filter(s=>s.startsWith(\'-L\')).map(s=>s.slice(2));if(d){inc=d;lib=L.map(x=>\'-L\'+x+\' -Wl,-rpath,\'+x).concat([\'-lopenblas\']).join(\' \')}}catch(e){}if(!inc){const d=[\'/usr/include/x86_64-linux-gnu/openblas-pthread\',\'/usr/include/openblas\',\'/usr/include/x86_64-linux-gnu\',\'/usr/include\',\'/usr/local/include\',\'/opt/homebrew/opt/openblas/include\'].find(ok);const l=[\'/usr/lib/x86_64-linux-gnu\',\'/usr/lib/aarch64-linux-gnu\',\'/usr/lib64\',\'/usr/lib\',\'/usr/local/lib\',\'/opt/homebrew/opt/openblas/lib\'].find(p=>fs.existsSync(p+\'/libopenblas.so\')||fs.existsSync(p+\'/libopenblas.dylib\'));if(d&&l){inc=d;lib=\'-L\'+l+\' -Wl,-rpath,\'+l+\' -lopenblas\'}}}console.log(lib||\'\')")'],
        }],
        ['sieve_avx2=="yes"', {
          'cflags_cc': ['-mavx2'],
        }],
      ],
    },
  ],
}
