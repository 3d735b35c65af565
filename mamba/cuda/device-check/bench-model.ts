// Random checkpoints of real Mamba shapes for the benchmark, made on the host in seconds (a 1.4B model through
// mamba/random-checkpoint.ts's per-element closures would take minutes). Same init scales as randomWeights
// (mamba_ssm's), values rounded to bf16 so that the bf16 and f32 engines and the PyTorch side
// (bench/cuda-compare.py, which reads the safetensors written here) all run exactly the same weights.
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import type { LayerWeights, MambaConfig, MambaWeights, Tensor } from '../../engine.ts';
import { hfConfigJson, randomConfig, weightsToTensors } from '../../random-checkpoint.ts';

export const SHAPES = {
  '130m': { dModel: 768, nLayer: 24 },
  '1.4b': { dModel: 2048, nLayer: 48 },
  /** For smoke runs of the device check on the CPU emulator. */
  tiny: { dModel: 64, nLayer: 4 },
} as const;
export type ShapeName = keyof typeof SHAPES;

export function benchConfig(shape: ShapeName): MambaConfig {
  return randomConfig({ ...SHAPES[shape], vocabSize: 50280 });
}

// Each tensor is filled by a counter-based stream (murmur3 finaliser of seed + i·golden ratio), uniform in
// [-bound, bound) and rounded to bf16, in worker threads over shared memory (a 1.4B model is ~1.4G values).
const FILL_SOURCE = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ buffer, offset, length, seed, bound, id }) => {
  const out = new Float32Array(buffer, offset, length);
  let x = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b9) | 0;
  const scale = (2 * bound) / 16777216;
  for (let i = 0; i < length; i++) {
    x = (x + 0x9e3779b9) | 0;
    let z = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    out[i] = (z >>> 8) * scale - bound;
  }
  const u = new Uint32Array(buffer, offset, length);
  for (let i = 0; i < length; i++) {
    const bits = u[i];
    u[i] = (((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16) >>> 0;
  }
  parentPort.postMessage(id);
});
`;

interface FillTask {
  out: Float32Array;
  seed: number;
  bound: number;
}

/** Runs the fills on min(cores, 16) workers; tensors are split in 16M-value pieces so the load balances. */
async function fillAll(tasks: FillTask[]): Promise<void> {
  const pieces: { buffer: ArrayBufferLike; offset: number; length: number; seed: number; bound: number }[] = [];
  const PIECE = 1 << 24;
  tasks.forEach((t, ti) => {
    for (let at = 0; at < t.out.length; at += PIECE) {
      pieces.push({
        buffer: t.out.buffer,
        offset: t.out.byteOffset + 4 * at,
        length: Math.min(PIECE, t.out.length - at),
        seed: ti * 4096 + at / PIECE + 1,
        bound: t.bound,
      });
    }
  });
  const workers = Array.from(
    { length: Math.max(1, Math.min(availableParallelism(), 16, pieces.length)) },
    () => new Worker(FILL_SOURCE, { eval: true }),
  );
  let next = 0;
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const send = () => {
              if (next >= pieces.length) return resolve();
              const id = next++;
              w.postMessage({ ...pieces[id]!, id });
            };
            w.on('message', send);
            w.on('error', reject);
            send();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function shared(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * 4));
}

const t = (shape: number[], data: Float32Array): Tensor => ({ shape, data });

export async function benchWeights(config: MambaConfig, seed: number): Promise<MambaWeights> {
  const { dModel, dInner, dState, dConv, dtRank, nLayer, vocabSize } = config;
  const tasks: FillTask[] = [];
  const uniform = (n: number, bound: number): Float32Array => {
    const out = shared(n);
    tasks.push({ out, seed: seed * 1_000_003 + tasks.length, bound });
    return out;
  };
  const small = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => bf16(f(i)));
  let state = seed >>> 0 || 1;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  // embedding: uniform with the std of N(0, 0.02²) (only its scale matters here)
  const embedding = t([vocabSize, dModel], uniform(vocabSize * dModel, 0.02 * Math.sqrt(3)));
  const layers: LayerWeights[] = [];
  for (let i = 0; i < nLayer; i++) {
    layers.push({
      norm: t(
        [dModel],
        small(dModel, () => 1 + 0.1 * (2 * next() - 1)),
      ),
      inProj: t([2 * dInner, dModel], uniform(2 * dInner * dModel, 1 / Math.sqrt(dModel))),
      inProjBias: null,
      convWeight: t(
        [dInner, 1, dConv],
        small(dInner * dConv, () => (2 * next() - 1) / Math.sqrt(dConv)),
      ),
      convBias: t(
        [dInner],
        small(dInner, () => (2 * next() - 1) / Math.sqrt(dConv)),
      ),
      xProj: t([dtRank + 2 * dState, dInner], uniform((dtRank + 2 * dState) * dInner, 1 / Math.sqrt(dInner))),
      dtProjWeight: t([dInner, dtRank], uniform(dInner * dtRank, dtRank ** -0.5)),
      dtProjBias: t(
        [dInner],
        small(dInner, () => {
          const dt = Math.max(Math.exp(next() * (Math.log(0.1) - Math.log(0.001)) + Math.log(0.001)), 1e-4);
          return dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹(dt), dt log-uniform in [1e-3, 1e-1]
        }),
      ),
      aLog: t(
        [dInner, dState],
        small(dInner * dState, (j) => Math.log(1 + (j % dState))),
      ),
      d: t([dInner], new Float32Array(dInner).fill(1)),
      outProj: t([dModel, dInner], uniform(dModel * dInner, 1 / Math.sqrt(dInner) / Math.sqrt(nLayer))),
      outProjBias: null,
    });
  }
  const normF = t(
    [dModel],
    small(dModel, () => 1 + 0.1 * (2 * next() - 1)),
  );
  await fillAll(tasks);
  return { embedding, layers, normF, lmHead: embedding };
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
function bf16(v: number): number {
  f32Scratch[0] = v;
  const bits = u32Scratch[0]!;
  u32Scratch[0] = (((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return f32Scratch[0]!;
}

/** config.json + model.safetensors (BF16, exact: the weights are bf16 values), streamed tensor by tensor. */
export function writeBenchCheckpoint(dir: string, config: MambaConfig, weights: MambaWeights): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfigJson(config), null, 2) + '\n');
  const tensors = weightsToTensors(config, weights);
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const name of names) {
    const n = tensors[name]!.data.length;
    header[name] = { dtype: 'BF16', shape: tensors[name]!.shape, data_offsets: [offset, offset + 2 * n] };
    offset += 2 * n;
  }
  let headerBytes = Buffer.from(JSON.stringify(header));
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  headerBytes = Buffer.concat([headerBytes, Buffer.alloc(padded - headerBytes.length, 0x20)]);
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    writeSync(fd, len);
    writeSync(fd, headerBytes);
    for (const name of names) {
      const data = tensors[name]!.data;
      const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length);
      const chunk = new Uint16Array(Math.min(data.length, 1 << 24));
      for (let at = 0; at < data.length; at += chunk.length) {
        const n = Math.min(chunk.length, data.length - at);
        for (let i = 0; i < n; i++) chunk[i] = u32[at + i]! >>> 16; // already bf16-exact: the top half is the value
        writeSync(fd, new Uint8Array(chunk.buffer, 0, 2 * n));
      }
    }
  } finally {
    closeSync(fd);
  }
}
