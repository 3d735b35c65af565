// Per-kernel time breakdown with CUDA events: one event between consecutive operations, so each operation's time is
// the interval ending at its mark. Off by default (events add a little launch overhead); the device check turns it on
// for a separate, profiled run.
import type { CudaDriver, CuHandle } from './bindings/driver.ts';

export interface KernelTime {
  label: string;
  calls: number;
  ms: number;
}

export class Profiler {
  private readonly pool: CuHandle[] = [];
  private marks: { label: string; event: CuHandle }[] = [];
  private start: CuHandle | null = null;
  private used = 0;

  constructor(
    private readonly driver: CudaDriver,
    private readonly stream: CuHandle,
  ) {}

  private nextEvent(): CuHandle {
    if (this.used === this.pool.length) this.pool.push(this.driver.createEvent());
    return this.pool[this.used++]!;
  }

  private inCapture = false;

  /** `inCapture`: the marks go into a graph being captured (read() after each replay). */
  begin(inCapture = false): void {
    this.marks = [];
    this.used = 0;
    this.inCapture = inCapture;
    this.start = this.nextEvent();
    this.driver.record(this.start, this.stream, inCapture);
  }

  /** Ends the interval of the operation just enqueued. */
  mark(label: string): void {
    if (!this.start) return;
    const event = this.nextEvent();
    this.driver.record(event, this.stream, this.inCapture);
    this.marks.push({ label, event });
  }

  /** Waits for the last event and sums the intervals by label; the marks are cleared. */
  collect(): KernelTime[] {
    const times = this.read();
    this.start = null;
    return times;
  }

  /**
   * The same without clearing: for marks recorded inside a captured CUDA graph, whose event nodes record again at
   * every replay, so each read after a replay gives that replay's intervals (no host gaps between launches in them).
   */
  read(): KernelTime[] {
    if (!this.start || this.marks.length === 0) return [];
    this.driver.syncEvent(this.marks[this.marks.length - 1]!.event);
    const byLabel = new Map<string, KernelTime>();
    let prev = this.start;
    for (const { label, event } of this.marks) {
      const ms = this.driver.elapsedMs(prev, event);
      const t = byLabel.get(label) ?? { label, calls: 0, ms: 0 };
      t.calls++;
      t.ms += ms;
      byLabel.set(label, t);
      prev = event;
    }
    return [...byLabel.values()].sort((a, b) => b.ms - a.ms);
  }

  dispose(): void {
    for (const e of this.pool) this.driver.destroyEvent(e);
    this.pool.length = 0;
  }
}
