// Engines the CLI can run (--engine). Other engines (onnx, cuda) register here.
import type { Checkpoint } from '../mamba/checkpoint.ts';
import type { MambaEngine } from '../mamba/engine.ts';
import { ReferenceEngine } from '../mamba/reference/index.ts';
import { UsageError } from './registry.ts';

export type EngineFactory = (checkpoint: Checkpoint) => Promise<MambaEngine>;

const factories = new Map<string, EngineFactory>([['reference', async (ckpt) => ReferenceEngine.fromCheckpoint(ckpt)]]);

export function registerEngine(name: string, factory: EngineFactory): void {
  factories.set(name, factory);
}

export function engineNames(): string[] {
  return [...factories.keys()];
}

export async function createEngine(name: string, checkpoint: Checkpoint): Promise<MambaEngine> {
  const factory = factories.get(name);
  if (!factory) throw new UsageError(`unknown engine '${name}' (available: ${engineNames().join(', ')})`);
  return factory(checkpoint);
}
