// Worker module imports that wrangler/workerd compile at upload time.
declare module 'onnxruntime-web/ort-wasm-simd-threaded.wasm' {
  const module: WebAssembly.Module;
  export default module;
}

// dist/wasm/mamba-step.wasm (mamba/wasm/build.ts), imported by worker/index.ts.
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
