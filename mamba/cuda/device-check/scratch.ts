// Device buffers for the kernel checks: uploads, NaN-poisoned outputs (so an unwritten element shows up), bf16
// activations converted on the device, and reads back as f32. Everything is freed at the end.
import { bf16BitsToF32, f32ToBf16Bits } from '../../safetensors.ts';
import type { DevicePtr } from '../bindings/driver.ts';
import type { CudaDevice, KernelSet } from '../device.ts';
import { convertToBf16 } from '../ops.ts';

export const NAN_WORD = 0x7fc00000;

export class Scratch {
  private readonly ptrs: DevicePtr[] = [];

  constructor(
    readonly device: CudaDevice,
    readonly kernels: KernelSet,
  ) {}

  get bf16(): boolean {
    return this.kernels.build.actBf16;
  }

  get actBytes(): 2 | 4 {
    return this.bf16 ? 2 : 4;
  }

  /** Rounded up to whole 32-bit words, so the poison fill stays inside. */
  alloc(bytes: number, poison = true): DevicePtr {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const p = this.device.alloc(size);
    this.ptrs.push(p);
    if (poison) this.device.fill32(p, NAN_WORD, size / 4);
    return p;
  }

  f32(data: Float32Array): DevicePtr {
    const p = this.alloc(data.byteLength, false);
    this.device.upload(p, data);
    return p;
  }

  f64(data: Float64Array): DevicePtr {
    const p = this.alloc(data.byteLength, false);
    this.device.upload(p, data);
    return p;
  }

  i32(data: Int32Array | number[]): DevicePtr {
    const a = data instanceof Int32Array ? data : Int32Array.from(data);
    const p = this.alloc(a.byteLength, false);
    this.device.upload(p, a);
    return p;
  }

  /** An activation buffer (f32 or bf16 per the build) holding `data`. */
  act(data: Float32Array): DevicePtr {
    if (!this.bf16) return this.f32(data);
    const staging = this.f32(data);
    const p = this.alloc(data.length * 2, false);
    convertToBf16(this.kernels, staging, p, data.length);
    return p;
  }

  readF32(p: DevicePtr, n: number): Float32Array {
    return this.device.download(new Float32Array(n), p);
  }

  readF64(p: DevicePtr, n: number): Float64Array {
    return this.device.download(new Float64Array(n), p);
  }

  readI32(p: DevicePtr, n: number): Int32Array {
    return this.device.download(new Int32Array(n), p);
  }

  readAct(p: DevicePtr, n: number): Float32Array {
    if (!this.bf16) return this.readF32(p, n);
    const bits = this.device.download(new Uint16Array(n), p);
    return Float32Array.from(bits, (b) => bf16BitsToF32(b));
  }

  /** What the device sees of an activation: the data rounded to bf16 in the bf16 build. */
  quantize(data: Float32Array): Float32Array {
    return this.bf16 ? Float32Array.from(data, (v) => bf16BitsToF32(f32ToBf16Bits(v))) : data;
  }

  free(): void {
    this.device.synchronize();
    for (const p of this.ptrs) this.device.free(p);
    this.ptrs.length = 0;
  }
}

/** Uniform in [lo, hi) from a seeded stream. */
export function randomArray(n: number, rng: { next(): number }, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng.next();
  return out;
}
