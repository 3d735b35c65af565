// Import rules (npm run check:imports): the edge and the runner meet only in protocol/, no product code imports bench/, no cycles.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'edge-and-runner-apart',
      comment: 'worker/ and runner/ talk over HTTP; what both need lives in protocol/.',
      severity: 'error',
      from: { path: '^(worker|runner)/' },
      to: { path: '^(worker|runner)/', pathNot: '^$1/' },
    },
    {
      name: 'nothing-to-bench',
      comment: 'bench/ measures the product; product code must not depend on it.',
      severity: 'error',
      from: { path: '^(runner|worker|mamba|protocol)/' },
      to: { path: '^bench/(?!results/)' },
    },
    {
      name: 'protocol-is-a-leaf',
      comment: 'The shared contract needs no serving code (mamba/ math only).',
      severity: 'error',
      from: { path: '^protocol/' },
      to: { path: '^(runner|worker|bench|cli)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // bench/peers/.llama.cpp: llama.cpp's source, cloned there (gitignored) to build llama-bench
    exclude: { path: '^(node_modules|dist|test/fixtures|bench/peers/.llama.cpp)/|/node_modules/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
};
