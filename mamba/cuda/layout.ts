// Sub-allocation of one device arena: named, 256-byte aligned spans, optionally separated by guard bytes that a
// check can verify were never written (overflow detection in tests and in the device check).

export interface Span {
  offset: number;
  bytes: number;
}

export const ARENA_ALIGN = 256;

export class Layout<Name extends string> {
  private readonly spans = new Map<Name, Span>();
  private readonly guardSpans: Span[] = [];
  private end = 0;

  constructor(private readonly guardBytes = 0) {}

  add(name: Name, bytes: number): Span {
    if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError(`layout: ${name} has an invalid size ${bytes}`);
    if (this.spans.has(name)) throw new Error(`layout: ${name} added twice`);
    const span = { offset: this.end, bytes };
    this.spans.set(name, span);
    this.end = align(this.end + bytes);
    if (this.guardBytes > 0) {
      this.guardSpans.push({ offset: this.end, bytes: this.guardBytes });
      this.end = align(this.end + this.guardBytes);
    }
    return span;
  }

  get(name: Name): Span {
    const span = this.spans.get(name);
    if (!span) throw new Error(`layout: no span named ${name}`);
    return span;
  }

  get totalBytes(): number {
    return this.end;
  }

  get guards(): readonly Span[] {
    return this.guardSpans;
  }

  entries(): [Name, Span][] {
    return [...this.spans.entries()];
  }
}

export function align(bytes: number, to = ARENA_ALIGN): number {
  return Math.ceil(bytes / to) * to;
}
