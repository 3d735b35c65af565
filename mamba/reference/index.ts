export { ReferenceEngine, EngineInputError } from './engine.ts';
export { mambaMixer, prepareLayer } from './mixer.ts';
export * as ops from './ops.ts';
export { prepareModel, referenceTrace } from './forward.ts';
