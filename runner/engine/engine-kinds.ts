// The engines a runner can drive. Adding one: extend this list and `loadEngine` in engine-factory.ts.
// `cuda` runs bf16 GEMMs (the serving path), `cuda-fp32` the parity path; `auto` is `cuda` when a GPU answers, else `onnx`.
export const ENGINE_KINDS = ['auto', 'reference', 'onnx', 'cuda', 'cuda-fp32'] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];
