// The machine as found: device, driver, library versions, memory, and the two ceilings measured once (METHOD.md):
// a large device-to-device copy (bytes read + written) and a large bf16 GEMM through the same cuBLAS the engine uses.
import { Nvrtc } from '../bindings/nvrtc.ts';
import type { CudaDevice } from '../device.ts';
import { convertToBf16 } from '../ops.ts';
import { H200 } from '../roofline.ts';
import type { Report } from './report.ts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Times `fn` with CUDA events on the engine's stream, `reps` times after `warmup`; returns the median in ms. */
export function timeOnStream(device: CudaDevice, fn: () => void, reps = 10, warmup = 2): number {
  const start = device.driver.createEvent();
  const end = device.driver.createEvent();
  try {
    for (let i = 0; i < warmup; i++) fn();
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      device.driver.record(start, device.stream);
      fn();
      device.driver.record(end, device.stream);
      device.driver.syncEvent(end);
      times.push(device.driver.elapsedMs(start, end));
    }
    return median(times);
  } finally {
    device.driver.destroyEvent(start);
    device.driver.destroyEvent(end);
  }
}

export function describeEnvironment(device: CudaDevice, report: Report): void {
  const mem = device.memInfo();
  Object.assign(report.info, {
    device: device.info,
    arch: device.arch,
    driverVersion: device.driver.driverVersion(),
    nvrtc: Nvrtc.load().version(),
    nvrtcPath: Nvrtc.load().libraryPath,
    cublasVersion: device.cublas.version(),
    cublasPath: device.cublas.libraryPath,
    memory: { freeGiB: mem.free / 2 ** 30, totalGiB: mem.total / 2 ** 30 },
    node: process.version,
    env: { LIBCUDA: process.env.LIBCUDA, CUDA_LIB_DIR: process.env.CUDA_LIB_DIR },
  });
  console.log(
    `device: ${device.info.name} sm_${device.info.computeCapability.join('')} ${device.info.multiprocessors} SMs, ${(mem.total / 2 ** 30).toFixed(1)} GiB`,
  );
}

/** Copy bandwidth (GB/s, read + write) and bf16 GEMM rate (TFLOP/s) on random data. */
export function measureCeilings(
  device: CudaDevice,
  kernels: Parameters<typeof convertToBf16>[0],
  report: Report,
): { bandwidth: number; bf16Flops: number } {
  const bytes = Math.min(2 * 2 ** 30, Math.floor(device.memInfo().free / 8 / 256) * 256);
  const a = device.alloc(bytes);
  const b = device.alloc(bytes);
  let bandwidth = 0;
  let bf16Flops = 0;
  try {
    const copyMs = timeOnStream(device, () => device.copy(b, a, bytes), 5, 1);
    bandwidth = (2 * bytes) / (copyMs / 1e3);
    const n = 8192;
    // random f32 → bf16 operands (METHOD.md: never time on zeros)
    const host = new Float32Array(n * n);
    for (let i = 0; i < host.length; i++) host[i] = Math.random() - 0.5;
    device.upload(a, host);
    convertToBf16(kernels, a, b, n * n);
    const w = b;
    const x = b + n * n * 2;
    convertToBf16(kernels, a, x, n * n);
    const y = a; // f32 out
    const gemmMs = timeOnStream(
      device,
      () =>
        device.cublas.linear({
          rows: n,
          k: n,
          n,
          x: { ptr: x, ld: n, type: 'bf16' },
          w: { ptr: w, ld: n, type: 'bf16' },
          y: { ptr: y, ld: n, type: 'f32' },
        }),
      10,
      3,
    );
    bf16Flops = (2 * n ** 3) / (gemmMs / 1e3);
  } finally {
    device.synchronize();
    device.free(a);
    device.free(b);
  }
  report.info.ceilings = { copyGBs: bandwidth / 1e9, bf16GemmTflops: bf16Flops / 1e12 };
  report.row('ceilings', {
    what: 'device-to-device copy',
    value: `${(bandwidth / 1e9).toFixed(0)} GB/s`,
    reference: `${(H200.bandwidth / 1e9).toFixed(0)} GB/s (committed run; KINDS.md: 4.3 TB/s)`,
  });
  report.row('ceilings', {
    what: 'cuBLAS bf16 GEMM 8192³, f32 out',
    value: `${(bf16Flops / 1e12).toFixed(0)} TFLOP/s`,
    reference: `${(H200.matmulFlops / 1e12).toFixed(0)} TFLOP/s (committed run)`,
  });
  return { bandwidth, bf16Flops };
}
