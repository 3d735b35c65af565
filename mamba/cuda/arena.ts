// One device allocation reused by every pass; it grows (free + alloc, in 64 MiB steps) only when a plan needs more.
import type { DevicePtr } from './bindings/driver.ts';
import type { CudaDevice } from './device.ts';

const GROW_STEP = 64 << 20;

export class DeviceArena {
  private ptr: DevicePtr | null = null;
  private bytes = 0;

  constructor(private readonly device: CudaDevice) {}

  get capacity(): number {
    return this.bytes;
  }

  /** The arena's base, at least `bytes` long. Growing synchronizes first: earlier work may still use the old one. */
  ensure(bytes: number): DevicePtr {
    if (this.ptr !== null && this.bytes >= bytes) return this.ptr;
    this.release();
    const size = Math.ceil(Math.max(bytes, 1) / GROW_STEP) * GROW_STEP;
    this.ptr = this.device.alloc(size);
    this.bytes = size;
    return this.ptr;
  }

  release(): void {
    if (this.ptr === null) return;
    this.device.synchronize();
    this.device.free(this.ptr);
    this.ptr = null;
    this.bytes = 0;
  }
}
