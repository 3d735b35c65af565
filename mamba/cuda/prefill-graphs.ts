// CUDA graphs of a prefill pass's device work (embedding and every block: the ~8-11 launches per layer that JS
// otherwise issues one by one), keyed by everything the launches' arguments depend on: the arena's base and the plan's
// shape (rows per sequence per group, decimation K, scan chunk, carried state, scan kind). Token ids, positions and
// states are not in the key: they are uploaded into the arena before the graph runs, and the graph reads them there.
// A shape seen once runs eagerly (no capture cost for one-off shapes, and cuBLAS warms up outside any capture); the
// second time it is captured, then replayed. At most `capacity` graphs are kept (least recently used dropped).
import type { CuHandle } from './bindings/driver.ts';
import type { BatchPlan } from './batch-plan.ts';
import type { CudaDevice } from './device.ts';

export type GraphUse = 'eager' | 'captured' | 'replayed';

export class PrefillGraphCache {
  private readonly graphs = new Map<string, CuHandle>();
  private readonly seen = new Set<string>();
  captures = 0;
  replays = 0;
  /** Why the last capture failed (then that pass ran eagerly); null when none has. */
  lastError: string | null = null;

  constructor(
    private readonly device: CudaDevice,
    private readonly capacity = 8,
  ) {}

  /** Runs `enqueue`'s launches on the device stream: eagerly, captured into a new graph, or by replaying one. */
  run(key: string, enqueue: () => void): GraphUse {
    const { driver, stream } = this.device;
    if (this.device.profiler) {
      enqueue(); // the profiler's events sit between launches: a graph would hide the per-kernel times
      return 'eager';
    }
    const hit = this.graphs.get(key);
    if (hit !== undefined) {
      this.graphs.delete(key); // re-insert: most recently used last
      this.graphs.set(key, hit);
      driver.launchGraph(hit, stream);
      this.replays++;
      return 'replayed';
    }
    if (!this.seen.has(key)) {
      if (this.seen.size >= 4096) this.seen.clear(); // many one-off shapes (a runner's mixed batches): stay bounded
      this.seen.add(key);
      enqueue();
      return 'eager';
    }
    let exec: CuHandle | null = null;
    try {
      driver.beginCapture(stream);
      try {
        enqueue();
      } finally {
        exec = driver.endCaptureAndInstantiate(stream);
      }
      driver.launchGraph(exec, stream);
    } catch (err) {
      this.lastError = (err as Error).message;
      if (exec !== null) driver.destroyGraphExec(exec);
      enqueue();
      return 'eager';
    }
    this.graphs.set(key, exec);
    this.captures++;
    this.seen.delete(key);
    while (this.graphs.size > this.capacity) {
      const [oldest, g] = this.graphs.entries().next().value as [string, CuHandle];
      driver.destroyGraphExec(g);
      this.graphs.delete(oldest);
    }
    return 'captured';
  }

  get size(): number {
    return this.graphs.size;
  }

  dispose(): void {
    for (const g of this.graphs.values()) this.device.driver.destroyGraphExec(g);
    this.graphs.clear();
    this.seen.clear();
  }
}

/** What a pass's launches depend on besides the data uploaded into the arena. */
export function passGraphKey(
  base: bigint | number,
  plan: BatchPlan,
  chunkLen: number,
  withInitState: boolean,
  scan: string,
): string {
  const groups = plan.groups.map((g) => Array.from(g.seqStart).join(',')).join('|');
  const steps = plan.decimations
    .map((d) => (d ? `${d.layer}:${Array.from(d.contextLen).join(',')}/${Array.from(d.keep).join(',')}` : ''))
    .join(';');
  return `${base}#${chunkLen}#${withInitState ? 1 : 0}#${scan}#${groups}#${steps}`;
}
