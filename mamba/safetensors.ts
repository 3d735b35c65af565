// safetensors reader/writer (https://github.com/huggingface/safetensors#format):
// 8-byte little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
// The f16/bf16 conversions are written here: they are a few lines, and no small, well-kept package does exactly this.

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64';

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte offsets into the data section (after the header). */
  dataOffsets: [number, number];
}

export interface SafetensorsReader {
  readonly metadata: Record<string, string>;
  readonly names: string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /**
   * The tensor as f32. F32 tensors at an aligned offset come back as a view on the input bytes (no copy); other
   * dtypes are converted into a new array.
   */
  getF32(name: string): Float32Array;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

export function readSafetensors(bytes: Uint8Array): SafetensorsReader {
  if (bytes.byteLength < 8) throw new SafetensorsError('safetensors: file shorter than its 8-byte header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.byteLength - 8) {
    throw new SafetensorsError(`safetensors: header length ${headerLength} exceeds the file size ${bytes.byteLength}`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (err) {
    throw new SafetensorsError(`safetensors: header is not valid JSON (${(err as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const infos = new Map<string, TensorInfo>();
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    infos.set(name, validateEntry(name, raw, dataLength));
  }

  const info = (name: string): TensorInfo => {
    const found = infos.get(name);
    if (!found) throw new SafetensorsError(`safetensors: no tensor named ${name}`);
    return found;
  };

  return {
    metadata,
    names: [...infos.keys()],
    has: (name) => infos.has(name),
    info,
    getF32(name) {
      const { dtype, dataOffsets } = info(name);
      const begin = dataStart + dataOffsets[0];
      const count = (dataOffsets[1] - dataOffsets[0]) / BYTES_PER_ELEMENT[dtype];
      const raw = bytes.subarray(begin, begin + count * BYTES_PER_ELEMENT[dtype]);
      return decodeToF32(dtype, raw, count);
    },
  };
}

function validateEntry(name: string, raw: unknown, dataLength: number): TensorInfo {
  const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  const dtype = entry?.dtype;
  if (typeof dtype !== 'string' || !(dtype in BYTES_PER_ELEMENT)) {
    throw new SafetensorsError(
      `safetensors: tensor ${name} has unsupported dtype ${String(dtype)} (supported: F32, F16, BF16, F64)`,
    );
  }
  const shape = entry.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new SafetensorsError(`safetensors: tensor ${name} has an invalid shape`);
  }
  const offsets = entry.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
    throw new SafetensorsError(`safetensors: tensor ${name} has invalid data_offsets`);
  }
  const [begin, end] = offsets as [number, number];
  const numel = (shape as number[]).reduce((a, b) => a * b, 1);
  const bytesPer = BYTES_PER_ELEMENT[dtype as SafetensorsDtype];
  if (end < begin || end > dataLength || end - begin !== numel * bytesPer) {
    throw new SafetensorsError(
      `safetensors: tensor ${name} has data_offsets [${begin}, ${end}] inconsistent with shape [${(shape as number[]).join(', ')}] ${dtype} or the file size`,
    );
  }
  return { dtype: dtype as SafetensorsDtype, shape: shape as number[], dataOffsets: [begin, end] };
}

// The format is little-endian; so is every platform we run on (x86, ARM, WASM), which is what makes views legal.
function decodeToF32(dtype: SafetensorsDtype, raw: Uint8Array, count: number): Float32Array {
  switch (dtype) {
    case 'F32':
      if (raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, count);
      return new Float32Array(raw.slice().buffer, 0, count); // unaligned (e.g. a pooled Buffer): one copy of this tensor
    case 'F64': {
      const src =
        raw.byteOffset % 8 === 0
          ? new Float64Array(raw.buffer, raw.byteOffset, count)
          : new Float64Array(raw.slice().buffer, 0, count);
      return Float32Array.from(src);
    }
    case 'F16':
    case 'BF16': {
      const halves =
        raw.byteOffset % 2 === 0
          ? new Uint16Array(raw.buffer, raw.byteOffset, count)
          : new Uint16Array(raw.slice().buffer, 0, count);
      const out = new Float32Array(count);
      const convert = dtype === 'F16' ? f16BitsToF32 : bf16BitsToF32;
      for (let i = 0; i < count; i++) out[i] = convert(halves[i]!);
      return out;
    }
  }
}

// ---- half-precision conversions ----

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** bf16 is the top 16 bits of an f32. */
export function bf16BitsToF32(bits: number): number {
  u32Scratch[0] = bits << 16;
  return f32Scratch[0]!;
}

/** f32 -> bf16 bits with round-to-nearest-even (NaN stays NaN), as torch does. */
export function f32ToBf16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) | 0x0040) & 0xffff;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** IEEE binary16 bits -> number (exact). */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero / subnormal
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** number -> IEEE binary16 bits, round-to-nearest-even, overflow to ±Infinity. */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value; // round to f32 first, as a tensor would be
  const x = f32Scratch[0]!;
  const signBit = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const abs = Math.abs(x);
  if (Number.isNaN(x)) return 0x7e00;
  if (abs === Infinity) return signBit | 0x7c00;
  if (abs === 0) return signBit;
  // Work in units of the smallest subnormal (2^-24) for tiny values, otherwise per-exponent ulps.
  let exponent = Math.floor(Math.log2(abs));
  if (2 ** exponent > abs) exponent -= 1; // guard log2 rounding
  if (2 ** (exponent + 1) <= abs) exponent += 1;
  if (exponent < -14) {
    const units = roundHalfEven(abs / 2 ** -24); // subnormal (may round up into the normal range: still correct bits)
    return signBit | units;
  }
  let mantissa = roundHalfEven((abs / 2 ** exponent - 1) * 1024);
  if (mantissa === 1024) {
    mantissa = 0;
    exponent += 1;
  }
  if (exponent > 15) return signBit | 0x7c00;
  return signBit | ((exponent + 15) << 10) | mantissa;
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

// ---- writer ----

export type WritableDtype = 'F32' | 'F16' | 'BF16';

export function writeSafetensors(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  dtype: WritableDtype = 'F32',
  metadata: Record<string, string> = { format: 'pt' },
): Uint8Array {
  const bytesPer = dtype === 'F32' ? 4 : 2;
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const { shape, data } = tensors[name]!;
    const numel = shape.reduce((a, b) => a * b, 1);
    if (numel !== data.length) {
      throw new SafetensorsError(
        `safetensors: tensor ${name} has ${data.length} values but shape [${shape.join(', ')}]`,
      );
    }
    header[name] = { dtype, shape, data_offsets: [offset, offset + numel * bytesPer] };
    offset += numel * bytesPer;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  // Pad the header with spaces so the data section starts 8-byte aligned (allowed by the format, done by the Python writer).
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    const withPadding = new Uint8Array(padded).fill(0x20);
    withPadding.set(headerBytes);
    headerBytes = withPadding;
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let cursor = 8 + headerBytes.length;
  for (const name of names) {
    const { data } = tensors[name]!;
    if (dtype === 'F32') {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), cursor);
      cursor += data.byteLength;
    } else {
      const halves = new Uint16Array(out.buffer, cursor, data.length); // cursor is even: header and all tensors are 2-byte multiples
      const convert = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < data.length; i++) halves[i] = convert(data[i]!);
      cursor += data.length * 2;
    }
  }
  return out;
}
