// The cost model: $ per edge request and $ per long job from measured throughput, S3 calls and unit prices.
// Pure functions; bench/cost/report.ts feeds them the measured numbers from bench/results/.

export interface Prices {
  workers: { perMillionRequests: number; perMillionCpuMs: number };
  gpu: Array<{ id: string; gpu: string; perHour: number; memoryBandwidthGBs: number }>;
  cpu: Array<{ id: string; vcpus: number; perHour: number }>;
  storage: Record<
    'r2' | 's3',
    { perGbMonth: number; egressPerGb: number } & Partial<{
      classAPerMillion: number;
      classBPerMillion: number;
      putPerThousand: number;
      getPerThousand: number;
    }>
  >;
  assumptions: { resultRetentionDays: number; gpuUtilization: number };
  h200BandwidthGBs: number;
}

/** Tokens per second of one engine on one device; `source` says where the number comes from. */
export interface Throughput {
  id: string;
  label: string;
  prefillTps: number;
  decodeTps: number;
  /** $ per hour of the device the engine occupies. */
  perHour: number;
  /** Fraction of paid hours doing work. */
  utilization: number;
  kind: 'measured' | 'estimate';
  source: string;
}

export interface Decimation {
  nLayer: number;
  /** The decimating layer (the first one, for several). */
  layer: number;
  lBase: number;
  minSeqLen: number;
}

/**
 * Share of a plain-Mamba prefill that DeciMamba costs: layers up to and including the decimating one see all L tokens,
 * the layers after it see only the kept ones. With the shipped model's layer 11 of 12 this is ~1.
 */
export function decimatedWorkFraction(length: number, d: Decimation): number {
  if (length <= d.lBase) return 1;
  const kept = Math.max(d.minSeqLen, Math.min(length, d.lBase));
  const full = d.layer + 1;
  return (full * length + (d.nLayer - full) * kept) / (d.nLayer * length);
}

export interface JobShape {
  promptTokens: number;
  newTokens: number;
}

/** Engine seconds for one job (batch-1; a batching engine shows up as a higher measured prefillTps). */
export function engineSeconds(t: Throughput, job: JobShape, workFraction = 1): number {
  return (job.promptTokens * workFraction) / t.prefillTps + job.newTokens / t.decodeTps;
}

export const deviceDollars = (t: Throughput, seconds: number) => (seconds / t.utilization) * (t.perHour / 3600);

/** Edge: Workers request + CPU-ms (prefill + decode on the WASM engine, single-threaded, so wall ≈ CPU). */
export function edgeRequestDollars(p: Prices, edge: Throughput, job: JobShape): { dollars: number; cpuMs: number } {
  const cpuMs = 1000 * engineSeconds(edge, job);
  return { dollars: p.workers.perMillionRequests / 1e6 + (cpuMs * p.workers.perMillionCpuMs) / 1e6, cpuMs };
}

/** S3 operations per job, measured from the runner's s3_requests_total (put/get/head/list…). */
export type S3Calls = Record<string, number>;

/** Writes and lists are class A (R2) / PUT-priced (S3); reads and HEADs class B / GET-priced. */
export const isClassA = (op: string) => /^(put|list|create|copy|post|delete)/i.test(op);

export function storageDollars(
  p: Prices,
  store: 'r2' | 's3',
  calls: S3Calls,
  storedBytes: number,
  egressBytes: number,
): number {
  const s = p.storage[store];
  let requests = 0;
  for (const [op, n] of Object.entries(calls)) {
    const a = isClassA(op);
    if (store === 'r2') requests += (n * (a ? s.classAPerMillion! : s.classBPerMillion!)) / 1e6;
    else requests += (n * (a ? s.putPerThousand! : s.getPerThousand!)) / 1000;
  }
  const gbMonths = (storedBytes / 1e9) * (p.assumptions.resultRetentionDays / 30);
  return requests + gbMonths * s.perGbMonth + (egressBytes / 1e9) * s.egressPerGb;
}

export interface JobCost {
  engineSeconds: number;
  compute: number;
  storage: number;
  edge: number;
  total: number;
}

/** One long job: edge submit + poll requests, engine time on the runner device, S3 calls and bytes. */
export function jobDollars(
  p: Prices,
  runner: Throughput,
  job: JobShape,
  opts: {
    workFraction: number;
    s3Calls: S3Calls;
    bytesPerPromptToken: number;
    resultBytes: number;
    store: 'r2' | 's3';
    edgeRequests: number;
  },
): JobCost {
  const secs = engineSeconds(runner, job, opts.workFraction);
  const compute = deviceDollars(runner, secs);
  const stored = job.promptTokens * opts.bytesPerPromptToken + opts.resultBytes;
  const storage = storageDollars(p, opts.store, opts.s3Calls, stored, opts.resultBytes);
  const edge = (opts.edgeRequests * p.workers.perMillionRequests) / 1e6;
  return { engineSeconds: secs, compute, storage, edge, total: compute + storage + edge };
}

/**
 * GPU tokens/s estimated from the memory roofline, scaled by the efficiency the H200 measurement reached:
 * tps = bandwidth / bytesPerToken × η, with η = measured H200 tps / (H200 bandwidth / bytesPerToken).
 */
export function rooflineTps(bandwidthGBs: number, bytesPerToken: number, efficiency: number): number {
  return ((bandwidthGBs * 1e9) / bytesPerToken) * efficiency;
}

/** Activation bytes one token moves through the selective-scan layers (fp16): ~12 d_inner-sized reads/writes per layer. */
export function bytesPerToken(cfg: { nLayer: number; dInner: number }): number {
  return 12 * cfg.dInner * 2 * cfg.nLayer;
}

/** The smallest x in xs where a(x) ≤ b(x) after being above it (or the first x where it holds), else null. */
export function breakEven(xs: number[], a: (x: number) => number, b: (x: number) => number): number | null {
  for (const x of xs) if (a(x) <= b(x)) return x;
  return null;
}
