// The GGUF writer, read back by a small independent parser written from the spec (not by the writer's code).
import { describe, expect, it } from 'vitest';
import { ggufTokenizer, mambaGguf, quantizeQ8_0 } from '../mamba/gguf/mamba-gguf.ts';
import { GgmlType, GgufError, writeGguf } from '../mamba/gguf/writer.ts';
import { randomConfig, randomWeights } from '../mamba/random-checkpoint.ts';
import { f16BitsToF32 } from '../mamba/safetensors.ts';

interface Parsed {
  version: number;
  kv: Map<string, unknown>;
  tensors: Map<string, { ne: number[]; type: number; offset: number }>;
  dataStart: number;
  bytes: Uint8Array;
}

function parse(bytes: Uint8Array): Parsed {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const u32 = () => ((p += 4), v.getUint32(p - 4, true));
  const u64 = () => ((p += 8), Number(v.getBigUint64(p - 8, true)));
  const str = () => {
    const n = u64();
    p += n;
    return new TextDecoder().decode(bytes.subarray(p - n, p));
  };
  const scalar = (t: number): unknown => {
    switch (t) {
      case 4:
        return u32();
      case 5:
        return ((p += 4), v.getInt32(p - 4, true));
      case 6:
        return ((p += 4), v.getFloat32(p - 4, true));
      case 7:
        return ((p += 1), v.getUint8(p - 1) === 1);
      case 8:
        return str();
      case 10:
        return u64();
      case 9: {
        const et = u32();
        const n = u64();
        return Array.from({ length: n }, () => scalar(et));
      }
      default:
        throw new Error(`type ${t}`);
    }
  };
  expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('GGUF');
  p = 4;
  const version = u32();
  const nt = u64();
  const nkv = u64();
  const kv = new Map<string, unknown>();
  for (let i = 0; i < nkv; i++) {
    const k = str();
    kv.set(k, scalar(u32()));
  }
  const tensors = new Map<string, { ne: number[]; type: number; offset: number }>();
  for (let i = 0; i < nt; i++) {
    const name = str();
    const ne = Array.from({ length: u32() }, () => u64());
    tensors.set(name, { ne, type: u32(), offset: u64() });
  }
  const align = kv.get('general.alignment') as number;
  return { version, kv, tensors, dataStart: Math.ceil(p / align) * align, bytes };
}

const f32At = (g: Parsed, name: string, count: number) => {
  const t = g.tensors.get(name)!;
  return new Float32Array(g.bytes.slice(g.dataStart + t.offset, g.dataStart + t.offset + count * 4).buffer);
};

describe('GGUF writer', () => {
  it('writes header, typed values, tensor infos and aligned data', () => {
    const a = Float32Array.from([1, 2, 3]);
    const b = Float32Array.from({ length: 6 }, (_, i) => -i);
    const bytes = writeGguf(
      new Map([
        ['x.str', { type: 'string', value: 'héllo' }],
        ['x.f', { type: 'f32', value: 0.5 }],
        ['x.b', { type: 'bool', value: true }],
        ['x.arr', { type: 'string[]', value: ['a', 'b c'] }],
        ['x.ints', { type: 'i32[]', value: [1, -3] }],
      ] as const),
      [
        { name: 'a', ne: [3], type: GgmlType.F32, data: new Uint8Array(a.buffer) },
        { name: 'b', ne: [3, 2], type: GgmlType.F32, data: new Uint8Array(b.buffer) },
      ],
    );
    const g = parse(bytes);
    expect(g.version).toBe(3);
    expect(Object.fromEntries(g.kv)).toEqual({
      'general.alignment': 32,
      'x.str': 'héllo',
      'x.f': 0.5,
      'x.b': true,
      'x.arr': ['a', 'b c'],
      'x.ints': [1, -3],
    });
    expect(g.dataStart % 32).toBe(0);
    expect(g.tensors.get('b')).toEqual({ ne: [3, 2], type: 0, offset: 32 }); // 'a' is 12 bytes, padded to 32
    expect([...f32At(g, 'b', 6)]).toEqual([...b]);
    expect(bytes.length % 32).toBe(0);
  });

  it('refuses wrong sizes, duplicate names and a caller-set alignment', () => {
    const one = { name: 'a', ne: [2], type: GgmlType.F32, data: new Uint8Array(4) };
    expect(() => writeGguf(new Map(), [one])).toThrow(/4 bytes, expected 8/);
    const ok = { ...one, data: new Uint8Array(8) };
    expect(() => writeGguf(new Map(), [ok, ok])).toThrow(GgufError);
    expect(() => writeGguf(new Map([['general.alignment', { type: 'u32', value: 64 }]]), [])).toThrow(/alignment/);
  });

  it('quantizes Q8_0 blocks with an f16 scale of max|x|/127', () => {
    const x = Float32Array.from({ length: 64 }, (_, i) => (i === 5 ? -2.54 : Math.sin(i) * (i < 32 ? 1 : 0.01)));
    const q = quantizeQ8_0(x);
    expect(q.length).toBe(68);
    const v = new DataView(q.buffer);
    const d0 = f16BitsToF32(v.getUint16(0, true));
    expect(d0).toBeCloseTo(2.54 / 127, 4);
    expect(v.getInt8(2 + 5)).toBe(-127);
    for (let i = 0; i < 64; i++) {
      const blk = i >> 5;
      const d = f16BitsToF32(v.getUint16(blk * 34, true));
      expect(Math.abs(v.getInt8(blk * 34 + 2 + (i & 31)) * d - x[i])).toBeLessThan(d * 0.51 + 1e-6);
    }
    expect(() => quantizeQ8_0(new Float32Array(10))).toThrow(/multiple of 32/);
  });

  it('lays a Mamba checkpoint out under llama.cpp names and shapes, A as −exp(A_log)', () => {
    const config = randomConfig({ dModel: 32, nLayer: 2, vocabSize: 64 });
    const w = randomWeights(config, 3);
    const vocab = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`t${i}`, i + 1]));
    const tok = ggufTokenizer(
      {
        model: { type: 'BPE', vocab, merges: [['t', '1']] },
        added_tokens: [{ id: 0, content: '<|endoftext|>', special: true }],
      },
      config.vocabSize,
    );
    expect(tok.tokens[45]).toBe('[PAD45]');
    const g = parse(mambaGguf(config, w, tok));
    const { dModel, dInner, dState, dConv, dtRank, vocabSize } = config;
    expect(g.kv.get('general.architecture')).toBe('mamba');
    expect(g.kv.get('tokenizer.ggml.pre')).toBe('starcoder');
    expect(g.kv.get('tokenizer.ggml.merges')).toEqual(['t 1']);
    expect((g.kv.get('tokenizer.ggml.token_type') as number[]).slice(0, 2)).toEqual([3, 1]);
    expect(g.kv.get('mamba.ssm.inner_size')).toBe(dInner);
    expect(g.tensors.get('token_embd.weight')!.ne).toEqual([dModel, vocabSize]);
    expect(g.tensors.get('blk.1.ssm_in.weight')!.ne).toEqual([dModel, 2 * dInner]);
    expect(g.tensors.get('blk.1.ssm_conv1d.weight')!.ne).toEqual([dConv, dInner]);
    expect(g.tensors.get('blk.1.ssm_x.weight')!.ne).toEqual([dInner, dtRank + 2 * dState]);
    expect(g.tensors.get('blk.0.ssm_a')!.ne).toEqual([dState, dInner]);
    expect(g.tensors.has('output.weight')).toBe(false); // tied head
    const a = f32At(g, 'blk.0.ssm_a', dInner * dState);
    expect(a[7]).toBeCloseTo(-Math.exp(w.layers[0].aLog.data[7]), 6);
    const q = parse(mambaGguf(config, w, tok, { precision: 'q8_0' }));
    expect(q.tensors.get('blk.0.ssm_in.weight')!.type).toBe(GgmlType.Q8_0);
    expect(q.tensors.get('blk.0.ssm_a')!.type).toBe(GgmlType.F32);
    expect(q.kv.get('general.file_type')).toBe(7);
  });
});
