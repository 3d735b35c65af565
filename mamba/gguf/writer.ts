// GGUF v3 writer (the ggml spec, docs/gguf.md): header, typed key/values, tensor infos, then aligned tensor data.
// Little-endian throughout; strings are a u64 byte length + UTF-8 without a terminator.
// Dimensions are written ggml-style, fastest-varying first (the reverse of a row-major [rows, cols] shape).

export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** ggml tensor types this writer produces. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlTypeCode = (typeof GgmlType)[keyof typeof GgmlType];

/** The spec's metadata value types this writer writes (gguf_type). */
const Kind = { U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: string[] }
  | { type: 'i32[]'; value: ArrayLike<number> };

export interface GgufTensor {
  name: string;
  /** ggml order: ne[0] is the contiguous dimension. */
  ne: number[];
  type: GgmlTypeCode;
  /** Raw bytes in the given type's layout. */
  data: Uint8Array;
}

export class GgufError extends Error {
  override name = 'GgufError';
}

/** Bytes a tensor of `ne` takes in `type` (Q8_0: blocks of 32 values, an f16 scale + 32 int8 = 34 bytes). */
export function tensorBytes(type: GgmlTypeCode, ne: number[]): number {
  const count = ne.reduce((a, b) => a * b, 1);
  if (type === GgmlType.F32) return count * 4;
  if (type === GgmlType.F16) return count * 2;
  if (ne[0] % 32 !== 0) throw new GgufError(`Q8_0 needs ne[0] to be a multiple of 32, got ${ne[0]}`);
  return (count / 32) * 34;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

type Scalar = 'u8' | 'u32' | 'i32' | 'f32' | 'u64';

/** Byte size and little-endian setter of each scalar encoding. */
const SCALARS: Record<Scalar, [bytes: number, set: (view: DataView, at: number, v: number) => void]> = {
  u8: [1, (d, at, v) => d.setUint8(at, v)],
  u32: [4, (d, at, v) => d.setUint32(at, v, true)],
  i32: [4, (d, at, v) => d.setInt32(at, v, true)],
  f32: [4, (d, at, v) => d.setFloat32(at, v, true)],
  u64: [8, (d, at, v) => d.setBigUint64(at, BigInt(v), true)],
};

/** The value kind written before each metadata value, by GgufValue type. */
const KIND_OF = { u32: Kind.U32, i32: Kind.I32, f32: Kind.F32, u64: Kind.U64 } as const;

/** A growable little-endian byte sink. */
class Sink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  /** Reserves n bytes and returns where they start (may replace buf/view: read those after calling). */
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  put(type: Scalar, v: number) {
    const [bytes, set] = SCALARS[type];
    const at = this.room(bytes);
    set(this.view, at, v);
  }
  bytes(b: Uint8Array) {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.put('u64', b.length);
    this.bytes(b);
  }
  pad(to: number) {
    while (this.length % to !== 0) this.put('u8', 0);
  }
  done(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** A metadata value: its kind, then the value (arrays: ARRAY, the element kind, the count, the elements). */
function writeValue(out: Sink, v: GgufValue): void {
  switch (v.type) {
    case 'u32':
    case 'i32':
    case 'f32':
    case 'u64':
      out.put('u32', KIND_OF[v.type]);
      out.put(v.type, v.value);
      break;
    case 'bool':
      out.put('u32', Kind.BOOL);
      out.put('u8', v.value ? 1 : 0);
      break;
    case 'string':
      out.put('u32', Kind.STRING);
      out.str(v.value);
      break;
    case 'string[]':
      writeArrayHeader(out, Kind.STRING, v.value.length);
      for (const s of v.value) out.str(s);
      break;
    case 'i32[]':
      writeArrayHeader(out, Kind.I32, v.value.length);
      for (let i = 0; i < v.value.length; i++) out.put('i32', v.value[i]);
      break;
  }
}

function writeArrayHeader(out: Sink, element: Kind, count: number): void {
  out.put('u32', Kind.ARRAY);
  out.put('u32', element);
  out.put('u64', count);
}

/** The whole file. Keys keep their insertion order; tensor data is laid out in the given order. */
export function writeGguf(metadata: Map<string, GgufValue>, tensors: GgufTensor[]): Uint8Array {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError(`duplicate tensor name ${t.name}`);
    names.add(t.name);
    if (t.ne.length < 1 || t.ne.length > 4 || t.ne.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new GgufError(`tensor ${t.name} has bad dimensions [${t.ne}]`);
    }
    const want = tensorBytes(t.type, t.ne);
    if (t.data.length !== want) throw new GgufError(`tensor ${t.name} has ${t.data.length} bytes, expected ${want}`);
  }
  const out = new Sink();
  out.bytes(new TextEncoder().encode('GGUF'));
  out.put('u32', GGUF_VERSION);
  out.put('u64', tensors.length);
  if (metadata.has('general.alignment'))
    throw new GgufError(`general.alignment is written by the writer (${GGUF_ALIGNMENT})`);
  out.put('u64', metadata.size + 1);
  out.str('general.alignment');
  writeValue(out, { type: 'u32', value: GGUF_ALIGNMENT });
  for (const [key, value] of metadata) {
    out.str(key);
    writeValue(out, value);
  }
  let offset = 0;
  for (const t of tensors) {
    out.str(t.name);
    out.put('u32', t.ne.length);
    for (const d of t.ne) out.put('u64', d);
    out.put('u32', t.type);
    out.put('u64', offset);
    offset = align(offset + t.data.length, GGUF_ALIGNMENT);
  }
  out.pad(GGUF_ALIGNMENT);
  for (const t of tensors) {
    out.bytes(t.data);
    out.pad(GGUF_ALIGNMENT);
  }
  return out.done();
}
