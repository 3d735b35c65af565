// Backpressure for inference at the edge (issue #13: 200 clients got p50 14.6 s and never a 503). One isolate or
// process runs at most `running` edge inferences at a time and lets at most `queued` more wait for a slot; past
// that the request is refused at once with 503 + Retry-After, so latency stays bounded and clients back off. Only
// work that runs here counts: requests handed to the runner wait on I/O, not on this CPU.
import { unavailable } from './errors.ts';

export class EdgeGate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly running: number,
    readonly queued: number,
  ) {}

  get inFlight(): number {
    return this.active + this.waiting.length;
  }

  /** Resolves with a release function once a slot is free; throws 503 edge_busy when the queue is full too. */
  async acquire(): Promise<() => void> {
    if (this.active >= this.running) {
      if (this.waiting.length >= this.queued) {
        throw unavailable(
          'edge_busy',
          `the edge is running ${this.active} requests with ${this.waiting.length} waiting; retry after the time in Retry-After`,
        );
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next)
        next(); // the slot passes straight to the next waiter
      else this.active--;
    };
  }
}
