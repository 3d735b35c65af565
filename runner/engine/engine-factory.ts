// The seam where the runner picks an engine. Runs inside the engine thread (engine-thread.ts), never on the
// main thread, because the CPU engines compute synchronously.
//
// To add an engine: implement MambaEngine (mamba/engine.ts) and load it here; pass.ts hands every engine a pass's
// completions as one batch (the CUDA engine packs them into one prefill and one decode session).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel } from '../../mamba/checkpoint.ts';
import { loadTokenizer, type TextTokenizer } from '../../mamba/tokenizer.ts';
import { ReferenceEngine } from '../../mamba/reference/index.ts';
import type { EngineKind } from './engine-kinds.ts';
import type { LoadedEngine } from '../pass/pass-types.ts';

/** Long documents are the runner's job; the ONNX graph itself has no length limit beyond memory. */
const ONNX_MAX_SEQ_LEN = 1 << 20;

export class EngineUnavailableError extends Error {
  override name = 'EngineUnavailableError';
}

export async function readTokenizer(modelDir: string): Promise<TextTokenizer> {
  const json = JSON.parse(await readFile(join(modelDir, 'tokenizer.json'), 'utf8'));
  const configPath = join(modelDir, 'tokenizer_config.json');
  const config = await readFile(configPath, 'utf8').then(JSON.parse, () => ({}));
  return loadTokenizer(json, config);
}

/** `device`: the GPU this engine drives (CUDA); CPU engines ignore it. */
export async function loadEngine(kind: EngineKind, modelDir: string, device = 0): Promise<LoadedEngine> {
  const tokenizer = await readTokenizer(modelDir);
  switch (kind) {
    case 'reference': {
      const { config, weights } = await loadModel(modelDir);
      return { kind, engine: new ReferenceEngine(config, weights), tokenizer, config };
    }
    case 'onnx': {
      // The CPU engine: export the checkpoint to ONNX in memory, then run it in onnxruntime-web (one thread).
      const { config, weights } = await loadModel(modelDir);
      const { exportMambaOnnx, modelBytes } = await import('../../mamba/onnx/export/export-model.ts');
      const { createOnnxEngineNode } = await import('../../mamba/onnx/node.ts');
      const exported = exportMambaOnnx(config, weights, { maxSeqLen: ONNX_MAX_SEQ_LEN });
      return {
        kind,
        engine: await createOnnxEngineNode(modelBytes(exported), { stepPrepack: true }),
        tokenizer,
        config,
      };
    }
    case 'cuda':
    case 'cuda-fp32': {
      const { config, weights } = await loadModel(modelDir);
      const { CudaEngine } = await import('../../mamba/cuda/engine.ts');
      let engine: import('../../mamba/cuda/engine.ts').CudaEngine;
      try {
        engine = CudaEngine.create(config, weights, {
          precision: kind === 'cuda' ? 'bf16' : 'fp32',
          deviceOptions: { ordinal: device },
        });
      } catch (err) {
        throw new EngineUnavailableError(`engine "${kind}" cannot use GPU ${device}: ${(err as Error).message}`);
      }
      return { kind, engine, tokenizer, config };
    }
    case 'auto':
      return loadEngine((await gpuPresent()) ? 'cuda' : 'onnx', modelDir, device);
  }
}

/** A CUDA driver loads and reports at least one device (LIBCUDA may point at a specific libcuda). */
export async function gpuPresent(): Promise<boolean> {
  try {
    const { CudaDevice } = await import('../../mamba/cuda/device.ts');
    return CudaDevice.available();
  } catch {
    return false; // koffi or its native part missing: no GPU path on this machine
  }
}
