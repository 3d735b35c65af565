// One GPU as the engine sees it: the primary context, one stream, a cuBLAS handle with its own workspace, the kernel
// modules (compiled once per build setting), allocation bookkeeping and the optional profiler.
import {
  CudaDriver,
  FunctionAttribute,
  type CuHandle,
  type DeviceInfo,
  type DevicePtr,
  type KernelArg,
  type LaunchShape,
} from './bindings/driver.ts';
import { Cublas, MathMode } from './bindings/cublas.ts';
import { Nvrtc } from './bindings/nvrtc.ts';
import { KernelCompiler, defaultCacheDir, type CompiledKernels } from './compile-cache.ts';
import { KERNEL_NAMES, type KernelBuild, type KernelName, kernelBuildKey } from './kernels/manifest.ts';
import { Profiler } from './profiler.ts';

export interface CudaDeviceOptions {
  ordinal?: number;
  /** Path to libcuda (default: LIBCUDA, then the soname). */
  libcuda?: string;
  /** NVRTC cache folder; null disables the disk cache. */
  cacheDir?: string | null;
  /** NVRTC target; default sm_XY of the device (a CUBIN, no JIT at load). */
  arch?: string;
  cublasWorkspaceBytes?: number;
}

export interface KernelStats {
  registers: number;
  localBytes: number;
}

const SHARED_MEMORY_KERNELS: KernelName[] = ['scan_chunk_state_staged', 'scan_chunk_output_staged'];

/** The kernels of one build, loaded as one module. */
export class KernelSet {
  private readonly fns = new Map<KernelName, CuHandle>();
  private readonly occupancy = new Map<string, number>();

  constructor(
    private readonly device: CudaDevice,
    readonly build: KernelBuild,
    readonly compiled: CompiledKernels,
    private readonly module: CuHandle,
  ) {
    for (const name of KERNEL_NAMES) this.fns.set(name, device.driver.getFunction(module, name));
    // the staged scan's ring of stages is its occupancy: ask for all of L1 as shared memory (its copies bypass L1)
    for (const name of SHARED_MEMORY_KERNELS)
      device.driver.setFunctionAttribute(this.fns.get(name)!, FunctionAttribute.preferredSharedCarveout, 100);
  }

  launch(name: KernelName, shape: LaunchShape, args: KernelArg[], label: string = name): void {
    this.device.driver.launch(this.fns.get(name)!, name, shape, args, this.device.stream);
    this.device.profiler?.mark(label);
  }

  /** Blocks of `blockSize` threads of kernel `name` that fit one multiprocessor at once (the driver's occupancy). */
  blocksPerMultiprocessor(name: KernelName, blockSize: number): number {
    const key = `${name}/${blockSize}`;
    let n = this.occupancy.get(key);
    if (n === undefined) {
      n = this.device.driver.blocksPerMultiprocessor(this.fns.get(name)!, blockSize);
      this.occupancy.set(key, n);
    }
    return n;
  }

  /** Registers and local (spill/stack) bytes per kernel, from the loaded module. */
  stats(): Record<KernelName, KernelStats> {
    const out = {} as Record<KernelName, KernelStats>;
    for (const [name, fn] of this.fns) {
      out[name] = {
        registers: this.device.driver.functionAttribute(fn, FunctionAttribute.numRegs),
        localBytes: this.device.driver.functionAttribute(fn, FunctionAttribute.localSizeBytes),
      };
    }
    return out;
  }

  unload(): void {
    this.device.driver.unloadModule(this.module);
  }
}

export class CudaDevice {
  readonly info: DeviceInfo;
  readonly stream: CuHandle;
  readonly cublas: Cublas;
  readonly arch: string;
  profiler: Profiler | null = null;
  private readonly workspace: DevicePtr;
  private readonly kernelSets = new Map<string, KernelSet>();
  private readonly compiler: KernelCompiler;
  private readonly live = new Map<DevicePtr, number>();
  private disposed = false;

  private constructor(
    readonly driver: CudaDriver,
    options: CudaDeviceOptions,
  ) {
    const ordinal = options.ordinal ?? 0;
    const count = driver.deviceCount();
    if (ordinal >= count) throw new RangeError(`CUDA device ${ordinal} requested, ${count} present`);
    this.info = driver.deviceInfo(ordinal);
    driver.retainPrimaryContext(this.info.ordinal);
    this.stream = driver.createStream();
    const [major, minor] = this.info.computeCapability;
    this.arch = options.arch ?? `sm_${major}${minor}`;
    const wsBytes = options.cublasWorkspaceBytes ?? 32 << 20;
    this.workspace = this.alloc(wsBytes);
    this.cublas = Cublas.create(this.stream, { ptr: this.workspace, bytes: wsBytes });
    this.cublas.setMathMode(MathMode.default); // f32 GEMMs stay f32 (no TF32): the parity path depends on it
    this.compiler = new KernelCompiler(
      Nvrtc.load(),
      options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir,
    );
  }

  static open(options: CudaDeviceOptions = {}): CudaDevice {
    return new CudaDevice(CudaDriver.load(options.libcuda ?? ''), options);
  }

  /** True when a driver loads and reports a device (for tests that need a GPU). */
  static available(): boolean {
    try {
      return CudaDriver.load('').deviceCount() > 0;
    } catch {
      return false;
    }
  }

  kernels(build: KernelBuild): KernelSet {
    const key = kernelBuildKey(build);
    let set = this.kernelSets.get(key);
    if (!set) {
      const compiled = this.compiler.compile(build, this.arch, `${this.info.name} ${this.arch}`);
      set = new KernelSet(this, build, compiled, this.driver.loadModule(compiled.image));
      this.kernelSets.set(key, set);
    }
    return set;
  }

  alloc(bytes: number): DevicePtr {
    const ptr = this.driver.alloc(bytes);
    this.live.set(ptr, bytes);
    return ptr;
  }

  free(ptr: DevicePtr): void {
    if (!this.live.delete(ptr))
      throw new Error(`free of ${ptr}, which this device did not allocate (or already freed)`);
    this.driver.free(ptr);
  }

  /** Bytes this process holds through this device object (weights, arenas, states). */
  get allocatedBytes(): number {
    let n = 0;
    for (const b of this.live.values()) n += b;
    return n;
  }

  memInfo(): { free: number; total: number } {
    return this.driver.memInfo();
  }

  synchronize(): void {
    this.driver.syncStream(this.stream);
  }

  upload(dst: DevicePtr, src: ArrayBufferView): void {
    this.driver.copyToDevice(dst, src, this.stream);
  }

  /** Waits for all earlier work on the stream, then copies. */
  download<T extends ArrayBufferView>(dst: T, src: DevicePtr): T {
    this.driver.copyToHost(dst, src, this.stream);
    return dst;
  }

  copy(dst: DevicePtr, src: DevicePtr, bytes: number): void {
    this.driver.copyDeviceToDevice(dst, src, bytes, this.stream);
  }

  fill32(dst: DevicePtr, value: number, words: number): void {
    this.driver.fill32(dst, value, words, this.stream);
  }

  enableProfiler(on: boolean): void {
    if (on && !this.profiler) this.profiler = new Profiler(this.driver, this.stream);
    if (!on && this.profiler) {
      this.profiler.dispose();
      this.profiler = null;
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.synchronize();
    this.enableProfiler(false);
    for (const set of this.kernelSets.values()) set.unload();
    this.cublas.destroy();
    for (const ptr of [...this.live.keys()]) this.free(ptr);
    this.driver.destroyStream(this.stream);
    this.driver.releasePrimaryContext(this.info.ordinal);
  }
}
