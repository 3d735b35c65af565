// Thin koffi bindings to the CUDA driver API (libcuda). Device pointers are JS numbers (CUdeviceptr as uint64_t);
// handles (context, stream, module, function, event, graph) are koffi's bigint pointers.
import koffi from 'koffi';
import { asAddress, bindFirst, loadLibrary, type NativeFunction } from './library.ts';
import { type Check, checker, readOut } from './errors.ts';

export type DevicePtr = number;
export type CuHandle = bigint;

/** CUdevice_attribute values used here (cuda.h). */
export const DeviceAttribute = {
  clockRateKHz: 13,
  multiprocessorCount: 16,
  memoryClockRateKHz: 36,
  memoryBusWidthBits: 37,
  l2CacheBytes: 38,
  maxThreadsPerMultiprocessor: 39,
  computeCapabilityMajor: 75,
  computeCapabilityMinor: 76,
  cooperativeLaunch: 95,
  maxSharedMemoryPerBlockOptin: 97,
} as const;

/** CUfunction_attribute values used here. */
export const FunctionAttribute = {
  maxThreadsPerBlock: 0,
  localSizeBytes: 3,
  numRegs: 4,
  maxDynamicSharedBytes: 8,
  /** percent of the unified L1/shared memory a kernel prefers as shared memory (a hint) */
  preferredSharedCarveout: 9,
} as const;

const CU_EVENT_DEFAULT = 0;
const CU_EVENT_RECORD_EXTERNAL = 1;
const CU_STREAM_NON_BLOCKING = 1;
const CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;

/** One argument of a kernel launch: its C type decides how many bytes are passed. */
export type KernelArg =
  | { ptr: DevicePtr | null } // any T* (device), 8 bytes; null → nullptr
  | { i32: number }
  | { u32: number }
  | { i64: number }
  | { f32: number };

export interface LaunchShape {
  grid: [number, number?, number?];
  block: [number, number?, number?];
  sharedBytes?: number;
  /**
   * Programmatic dependent launch (sm_90+): the kernel may start while the previous one in the stream still runs; it
   * must call griddepcontrol.wait (prelude.cuh pdl_wait) before it touches anything that kernel writes or reads.
   */
  programmatic?: boolean;
  /**
   * Cooperative launch: every block resident at once, or the launch fails (a kernel with grid-wide barriers needs it;
   * DeviceInfo.cooperativeLaunch says whether the device offers it).
   */
  cooperative?: boolean;
}

export interface DeviceInfo {
  ordinal: number;
  name: string;
  computeCapability: [number, number];
  multiprocessors: number;
  totalBytes: number;
  l2Bytes: number;
  maxThreadsPerMultiprocessor: number;
  clockMHz: number;
  memoryClockMHz: number;
  memoryBusWidthBits: number;
  cooperativeLaunch: boolean;
}

function bind(path: string) {
  const { handle } = loadLibrary('cuda', path === '' ? process.env : { ...process.env, LIBCUDA: path });
  const f = (protos: string | string[]): NativeFunction => bindFirst(handle, Array.isArray(protos) ? protos : [protos]);
  return {
    cuGetErrorName: f('int cuGetErrorName(int error, _Out_ const char **pStr)'),
    cuGetErrorString: f('int cuGetErrorString(int error, _Out_ const char **pStr)'),
    cuInit: f('int cuInit(unsigned int flags)'),
    cuDriverGetVersion: f('int cuDriverGetVersion(_Out_ int *version)'),
    cuDeviceGetCount: f('int cuDeviceGetCount(_Out_ int *count)'),
    cuDeviceGet: f('int cuDeviceGet(_Out_ int *device, int ordinal)'),
    cuDeviceGetName: f('int cuDeviceGetName(_Out_ uint8_t *name, int len, int dev)'),
    cuDeviceGetAttribute: f('int cuDeviceGetAttribute(_Out_ int *value, int attrib, int dev)'),
    cuDeviceTotalMem: f(['int cuDeviceTotalMem_v2(_Out_ size_t *bytes, int dev)']),
    cuDevicePrimaryCtxRetain: f('int cuDevicePrimaryCtxRetain(_Out_ void **ctx, int dev)'),
    cuDevicePrimaryCtxRelease: f([
      'int cuDevicePrimaryCtxRelease_v2(int dev)',
      'int cuDevicePrimaryCtxRelease(int dev)',
    ]),
    cuCtxSetCurrent: f('int cuCtxSetCurrent(void *ctx)'),
    cuCtxSynchronize: f('int cuCtxSynchronize()'),
    cuMemGetInfo: f(['int cuMemGetInfo_v2(_Out_ size_t *free, _Out_ size_t *total)']),
    cuMemAlloc: f(['int cuMemAlloc_v2(_Out_ uint64_t *dptr, size_t bytes)']),
    cuMemFree: f(['int cuMemFree_v2(uint64_t dptr)']),
    cuMemcpyHtoDAsync: f(['int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t bytes, void *stream)']),
    cuMemcpyDtoHAsync: f(['int cuMemcpyDtoHAsync_v2(void *dst, uint64_t src, size_t bytes, void *stream)']),
    cuMemcpyDtoDAsync: f(['int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t bytes, void *stream)']),
    cuMemsetD32Async: f('int cuMemsetD32Async(uint64_t dst, unsigned int value, size_t count, void *stream)'),
    cuStreamCreate: f('int cuStreamCreate(_Out_ void **stream, unsigned int flags)'),
    cuStreamDestroy: f(['int cuStreamDestroy_v2(void *stream)']),
    cuStreamSynchronize: f('int cuStreamSynchronize(void *stream)'),
    cuModuleLoadData: f('int cuModuleLoadData(_Out_ void **module, const void *image)'),
    cuModuleUnload: f('int cuModuleUnload(void *module)'),
    cuModuleGetFunction: f('int cuModuleGetFunction(_Out_ void **fn, void *module, const char *name)'),
    cuFuncGetAttribute: f('int cuFuncGetAttribute(_Out_ int *value, int attrib, void *fn)'),
    cuFuncSetAttribute: f('int cuFuncSetAttribute(void *fn, int attrib, int value)'),
    cuOccupancyMaxActiveBlocksPerMultiprocessor: f(
      'int cuOccupancyMaxActiveBlocksPerMultiprocessor(_Out_ int *blocks, void *fn, int blockSize, size_t dynamicSmem)',
    ),
    cuLaunchKernel: f(
      'int cuLaunchKernel(void *fn, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t bx, uint32_t by, uint32_t bz, uint32_t sharedBytes, void *stream, void **params, void **extra)',
    ),
    cuLaunchKernelEx: f('int cuLaunchKernelEx(const void *config, void *fn, void **params, void **extra)'),
    cuEventCreate: f('int cuEventCreate(_Out_ void **event, unsigned int flags)'),
    cuEventDestroy: f(['int cuEventDestroy_v2(void *event)']),
    cuEventRecord: f('int cuEventRecord(void *event, void *stream)'),
    cuEventRecordWithFlags: f('int cuEventRecordWithFlags(void *event, void *stream, unsigned int flags)'),
    cuEventSynchronize: f('int cuEventSynchronize(void *event)'),
    cuEventElapsedTime: f([
      'int cuEventElapsedTime_v2(_Out_ float *ms, void *start, void *end)',
      'int cuEventElapsedTime(_Out_ float *ms, void *start, void *end)',
    ]),
    cuStreamBeginCapture: f(['int cuStreamBeginCapture_v2(void *stream, int mode)']),
    cuStreamEndCapture: f('int cuStreamEndCapture(void *stream, _Out_ void **graph)'),
    cuGraphInstantiate: f('int cuGraphInstantiateWithFlags(_Out_ void **exec, void *graph, uint64_t flags)'),
    cuGraphLaunch: f('int cuGraphLaunch(void *exec, void *stream)'),
    cuGraphExecDestroy: f('int cuGraphExecDestroy(void *exec)'),
    cuGraphDestroy: f('int cuGraphDestroy(void *graph)'),
  };
}

type Raw = ReturnType<typeof bind>;

// cuLaunchKernelEx's CUlaunchConfig (cuda.h): seven uint32 (grid, block, shared bytes), the stream at 32, the
// attribute array at 40, their count at 48; 56 bytes. A CUlaunchAttribute is an id (uint32, 4 bytes of padding) and a
// 64-byte value union whose first int32 turns it on: programmatic stream serialization, cooperative. Each combination's
// array lives in native memory that is never freed, since the config holds its address.
const CU_LAUNCH_ATTRIBUTE_COOPERATIVE = 2;
const CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
const ATTRIBUTE_BYTES = 72;
/** Each combination's array and count, indexed by (programmatic ? 1 : 0) | (cooperative ? 2 : 0), made once. */
const attributeArrays: ({ at: bigint; count: number } | undefined)[] = [];
const LAUNCH_CONFIG = Buffer.alloc(56);

function attributeArray(shape: LaunchShape): { at: bigint; count: number } {
  const index = (shape.programmatic ? 1 : 0) | (shape.cooperative ? 2 : 0);
  let made = attributeArrays[index];
  if (made === undefined) {
    const ids = [
      ...(shape.programmatic ? [CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION] : []),
      ...(shape.cooperative ? [CU_LAUNCH_ATTRIBUTE_COOPERATIVE] : []),
    ];
    const bytes = new Uint8Array(ATTRIBUTE_BYTES * ids.length);
    const view = new DataView(bytes.buffer);
    ids.forEach((id, i) => {
      view.setUint32(ATTRIBUTE_BYTES * i, id, true);
      view.setInt32(ATTRIBUTE_BYTES * i + 8, 1, true);
    });
    const native = koffi.alloc('uint8_t', bytes.length);
    koffi.encode(native, koffi.array('uint8_t', bytes.length), Array.from(bytes));
    made = { at: BigInt(koffi.address(native)), count: ids.length };
    attributeArrays[index] = made;
  }
  return made;
}

function launchConfig(dims: number[], stream: CuHandle | null, shape: LaunchShape): Buffer {
  const attrs = attributeArray(shape);
  dims.forEach((d, i) => LAUNCH_CONFIG.writeUInt32LE(d, 4 * i));
  LAUNCH_CONFIG.writeUInt32LE(0, 28);
  LAUNCH_CONFIG.writeBigUInt64LE(stream === null ? 0n : BigInt(stream), 32);
  LAUNCH_CONFIG.writeBigUInt64LE(attrs.at, 40);
  LAUNCH_CONFIG.writeUInt32LE(attrs.count, 48);
  return LAUNCH_CONFIG;
}

// Argument slots reused by every launch (cuLaunchKernel copies the values before it returns), so packing costs no
// allocation: launching from JavaScript is a few microseconds, and a prefill makes hundreds of launches.
const MAX_KERNEL_ARGS = 32;
const SLOTS = Array.from({ length: MAX_KERNEL_ARGS }, () => Buffer.alloc(8));
const SLOTS4 = SLOTS.map((b) => b.subarray(0, 4));
const PARAM_ARRAYS: Buffer[][] = Array.from({ length: MAX_KERNEL_ARGS + 1 }, (_, n) => new Array<Buffer>(n));

function writeU64(b: Buffer, v: number): void {
  if (v >= 0 && v <= Number.MAX_SAFE_INTEGER) {
    b.writeUInt32LE(v % 0x1_0000_0000, 0);
    b.writeUInt32LE(Math.floor(v / 0x1_0000_0000), 4);
  } else {
    b.writeBigInt64LE(BigInt(v), 0);
  }
}

/**
 * cuLaunchKernel's `void **params`: one slot per argument holding its value with its C size. The returned buffers
 * are reused by the next call: pass them to the driver before packing again.
 */
export function packKernelArgs(args: KernelArg[]): Buffer[] {
  if (args.length > MAX_KERNEL_ARGS)
    throw new RangeError(`kernel launch with ${args.length} arguments (at most ${MAX_KERNEL_ARGS})`);
  const out = PARAM_ARRAYS[args.length]!;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const slot = SLOTS[i]!;
    if ('ptr' in arg) {
      writeU64(slot, arg.ptr ?? 0);
      out[i] = slot;
    } else if ('i64' in arg) {
      writeU64(slot, arg.i64);
      out[i] = slot;
    } else if ('i32' in arg) {
      slot.writeInt32LE(arg.i32, 0);
      out[i] = SLOTS4[i]!;
    } else if ('u32' in arg) {
      slot.writeUInt32LE(arg.u32, 0);
      out[i] = SLOTS4[i]!;
    } else {
      slot.writeFloatLE(arg.f32, 0);
      out[i] = SLOTS4[i]!;
    }
  }
  return out;
}

/** The driver API with every call checked. One instance per library path. */
export class CudaDriver {
  private readonly check: Check;

  private constructor(private readonly raw: Raw) {
    this.check = checker('cuda', (code) => {
      const name = [null as string | null];
      const text = [null as string | null];
      raw.cuGetErrorName(code, name);
      raw.cuGetErrorString(code, text);
      return { name: name[0] ?? `CUDA error ${code}`, description: text[0] ?? '' };
    });
  }

  private static instances = new Map<string, CudaDriver>();

  /** A call that returns a handle (context, stream, module, function, event, graph) through its out-parameter. */
  private handleOut(call: string, fn: (out: (bigint | null)[]) => number): CuHandle {
    return readOut<bigint | null>(this.check, call, null, fn)!;
  }

  /** Loads libcuda (LIBCUDA or the soname, or `path`) and runs cuInit(0). */
  static load(path = ''): CudaDriver {
    let driver = CudaDriver.instances.get(path);
    if (!driver) {
      driver = new CudaDriver(bind(path));
      driver.check('cuInit', driver.raw.cuInit(0));
      CudaDriver.instances.set(path, driver);
    }
    return driver;
  }

  driverVersion(): number {
    return readOut(this.check, 'cuDriverGetVersion', 0, (v) => this.raw.cuDriverGetVersion(v));
  }

  deviceCount(): number {
    return readOut(this.check, 'cuDeviceGetCount', 0, (n) => this.raw.cuDeviceGetCount(n));
  }

  attribute(device: number, attribute: number): number {
    const call = `cuDeviceGetAttribute(${attribute})`;
    return readOut(this.check, call, 0, (v) => this.raw.cuDeviceGetAttribute(v, attribute, device));
  }

  deviceInfo(ordinal: number): DeviceInfo {
    const d = readOut(this.check, 'cuDeviceGet', 0, (dev) => this.raw.cuDeviceGet(dev, ordinal));
    const nameBuf = new Uint8Array(256);
    this.check('cuDeviceGetName', this.raw.cuDeviceGetName(nameBuf, nameBuf.length, d));
    const end = nameBuf.indexOf(0);
    const total = readOut(this.check, 'cuDeviceTotalMem', 0, (t) => this.raw.cuDeviceTotalMem(t, d));
    const a = (attr: number) => this.attribute(d, attr);
    return {
      ordinal: d,
      name: new TextDecoder().decode(nameBuf.subarray(0, end < 0 ? nameBuf.length : end)),
      computeCapability: [a(DeviceAttribute.computeCapabilityMajor), a(DeviceAttribute.computeCapabilityMinor)],
      multiprocessors: a(DeviceAttribute.multiprocessorCount),
      totalBytes: Number(total),
      l2Bytes: a(DeviceAttribute.l2CacheBytes),
      maxThreadsPerMultiprocessor: a(DeviceAttribute.maxThreadsPerMultiprocessor),
      clockMHz: a(DeviceAttribute.clockRateKHz) / 1000,
      memoryClockMHz: a(DeviceAttribute.memoryClockRateKHz) / 1000,
      memoryBusWidthBits: a(DeviceAttribute.memoryBusWidthBits),
      cooperativeLaunch: a(DeviceAttribute.cooperativeLaunch) === 1,
    };
  }

  /** Retains the device's primary context and makes it current on this thread. */
  retainPrimaryContext(device: number): CuHandle {
    const ctx = this.handleOut('cuDevicePrimaryCtxRetain', (c) => this.raw.cuDevicePrimaryCtxRetain(c, device));
    this.check('cuCtxSetCurrent', this.raw.cuCtxSetCurrent(ctx));
    return ctx;
  }

  releasePrimaryContext(device: number): void {
    this.check('cuDevicePrimaryCtxRelease', this.raw.cuDevicePrimaryCtxRelease(device));
  }

  setCurrent(ctx: CuHandle): void {
    this.check('cuCtxSetCurrent', this.raw.cuCtxSetCurrent(ctx));
  }

  synchronize(): void {
    this.check('cuCtxSynchronize', this.raw.cuCtxSynchronize());
  }

  memInfo(): { free: number; total: number } {
    const free = [0];
    const total = [0];
    this.check('cuMemGetInfo', this.raw.cuMemGetInfo(free, total));
    return { free: Number(free[0]), total: Number(total[0]) };
  }

  alloc(bytes: number): DevicePtr {
    const call = `cuMemAlloc(${bytes} bytes)`;
    return asAddress(readOut(this.check, call, 0, (p) => this.raw.cuMemAlloc(p, Math.max(bytes, 1))));
  }

  free(ptr: DevicePtr): void {
    this.check('cuMemFree', this.raw.cuMemFree(ptr));
  }

  /** Host → device. From pageable memory the call returns once the source is staged, so `src` may change after. */
  copyToDevice(dst: DevicePtr, src: ArrayBufferView, stream: CuHandle | null, bytes = src.byteLength): void {
    if (bytes === 0) return;
    this.check('cuMemcpyHtoDAsync', this.raw.cuMemcpyHtoDAsync(dst, src, bytes, stream));
  }

  /** Device → host into pageable memory: the call returns once the copy (and all earlier work on the stream) is done. */
  copyToHost(dst: ArrayBufferView, src: DevicePtr, stream: CuHandle | null, bytes = dst.byteLength): void {
    if (bytes === 0) return;
    this.check('cuMemcpyDtoHAsync', this.raw.cuMemcpyDtoHAsync(dst, src, bytes, stream));
  }

  copyDeviceToDevice(dst: DevicePtr, src: DevicePtr, bytes: number, stream: CuHandle | null): void {
    if (bytes === 0) return;
    this.check('cuMemcpyDtoDAsync', this.raw.cuMemcpyDtoDAsync(dst, src, bytes, stream));
  }

  /** Fills `count` 32-bit words (e.g. a NaN pattern to poison outputs in checks). */
  fill32(dst: DevicePtr, value: number, count: number, stream: CuHandle | null): void {
    if (count === 0) return;
    this.check('cuMemsetD32Async', this.raw.cuMemsetD32Async(dst, value >>> 0, count, stream));
  }

  createStream(): CuHandle {
    return this.handleOut('cuStreamCreate', (s) => this.raw.cuStreamCreate(s, CU_STREAM_NON_BLOCKING));
  }

  destroyStream(stream: CuHandle): void {
    this.check('cuStreamDestroy', this.raw.cuStreamDestroy(stream));
  }

  syncStream(stream: CuHandle | null): void {
    this.check('cuStreamSynchronize', this.raw.cuStreamSynchronize(stream));
  }

  loadModule(image: Uint8Array): CuHandle {
    return this.handleOut('cuModuleLoadData', (m) => this.raw.cuModuleLoadData(m, image));
  }

  unloadModule(module: CuHandle): void {
    this.check('cuModuleUnload', this.raw.cuModuleUnload(module));
  }

  getFunction(module: CuHandle, name: string): CuHandle {
    return this.handleOut(`cuModuleGetFunction(${name})`, (fn) => this.raw.cuModuleGetFunction(fn, module, name));
  }

  functionAttribute(fn: CuHandle, attribute: number): number {
    const call = `cuFuncGetAttribute(${attribute})`;
    return readOut(this.check, call, 0, (v) => this.raw.cuFuncGetAttribute(v, attribute, fn));
  }

  /** Blocks of `blockSize` threads that fit one multiprocessor at once (registers, shared memory, warps). */
  blocksPerMultiprocessor(fn: CuHandle, blockSize: number): number {
    const call = 'cuOccupancyMaxActiveBlocksPerMultiprocessor';
    return readOut(this.check, call, 0, (v) =>
      this.raw.cuOccupancyMaxActiveBlocksPerMultiprocessor(v, fn, blockSize, 0),
    );
  }

  setFunctionAttribute(fn: CuHandle, attribute: number, value: number): void {
    this.check(`cuFuncSetAttribute(${attribute})`, this.raw.cuFuncSetAttribute(fn, attribute, value));
  }

  launch(fn: CuHandle, name: string, shape: LaunchShape, args: KernelArg[], stream: CuHandle | null): void {
    const [gx, gy = 1, gz = 1] = shape.grid;
    const [bx, by = 1, bz = 1] = shape.block;
    if (gx < 1 || gy < 1 || gz < 1) throw new RangeError(`launch ${name}: empty grid [${gx}, ${gy}, ${gz}]`);
    if (shape.programmatic || shape.cooperative) {
      const config = launchConfig([gx, gy, gz, bx, by, bz, shape.sharedBytes ?? 0], stream, shape);
      this.check(`cuLaunchKernelEx(${name})`, this.raw.cuLaunchKernelEx(config, fn, packKernelArgs(args), null));
      return;
    }
    this.check(
      `cuLaunchKernel(${name})`,
      this.raw.cuLaunchKernel(fn, gx, gy, gz, bx, by, bz, shape.sharedBytes ?? 0, stream, packKernelArgs(args), null),
    );
  }

  createEvent(): CuHandle {
    return this.handleOut('cuEventCreate', (e) => this.raw.cuEventCreate(e, CU_EVENT_DEFAULT));
  }

  destroyEvent(event: CuHandle): void {
    this.check('cuEventDestroy', this.raw.cuEventDestroy(event));
  }

  /** `inCapture`: the stream is being captured and the record becomes a node of the graph (EXTERNAL), so a replay
   * records the event again; without the flag a captured record is only an ordering edge and the event is never set. */
  record(event: CuHandle, stream: CuHandle | null, inCapture = false): void {
    if (inCapture)
      this.check('cuEventRecordWithFlags', this.raw.cuEventRecordWithFlags(event, stream, CU_EVENT_RECORD_EXTERNAL));
    else this.check('cuEventRecord', this.raw.cuEventRecord(event, stream));
  }

  syncEvent(event: CuHandle): void {
    this.check('cuEventSynchronize', this.raw.cuEventSynchronize(event));
  }

  elapsedMs(start: CuHandle, end: CuHandle): number {
    const ms = new Float32Array(1);
    this.check('cuEventElapsedTime', this.raw.cuEventElapsedTime(ms, start, end));
    return ms[0]!;
  }

  beginCapture(stream: CuHandle): void {
    this.check('cuStreamBeginCapture', this.raw.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  }

  /** Ends a capture and instantiates it; the graph itself is destroyed once instantiated. */
  endCaptureAndInstantiate(stream: CuHandle): CuHandle {
    const graph = this.handleOut('cuStreamEndCapture', (g) => this.raw.cuStreamEndCapture(stream, g));
    try {
      return this.handleOut('cuGraphInstantiate', (exec) => this.raw.cuGraphInstantiate(exec, graph, 0));
    } finally {
      this.check('cuGraphDestroy', this.raw.cuGraphDestroy(graph));
    }
  }

  launchGraph(exec: CuHandle, stream: CuHandle): void {
    this.check('cuGraphLaunch', this.raw.cuGraphLaunch(exec, stream));
  }

  destroyGraphExec(exec: CuHandle): void {
    this.check('cuGraphExecDestroy', this.raw.cuGraphExecDestroy(exec));
  }
}
