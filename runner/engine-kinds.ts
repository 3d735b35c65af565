// The engines a runner can drive. Adding one: extend this list and `loadEngine` in engine-factory.ts.
export const ENGINE_KINDS = ['reference', 'onnx', 'cuda'] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];
