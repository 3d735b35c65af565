// Splits a batch of prefill requests into passes that fit the memory budget, before anything runs:
// requests are packed in order while the next one fits; a plain prompt too long for one pass is cut into segments
// that run one after another, carrying the state; a DeciMamba prompt too long for one pass is refused (its top-K needs
// every token of a layer at once). Pure TypeScript: `fits` is the caller's exact memory check.

export interface ScheduleRequest {
  length: number;
  /** DeciMamba needs the whole prompt in one pass. */
  decimating: boolean;
}

export interface PassSegment {
  request: number;
  /** First row of the prompt this item covers, and how many rows. */
  start: number;
  length: number;
}

export interface Schedule {
  passes: PassSegment[][];
  /** Requests that cannot run at all, with the reason. */
  refused: Map<number, string>;
}

export function schedulePasses(
  requests: ScheduleRequest[],
  fits: (items: PassSegment[]) => boolean,
  describe: (items: PassSegment[]) => string = () => '',
): Schedule {
  const passes: PassSegment[][] = [];
  const refused = new Map<number, string>();
  let current: PassSegment[] = [];
  const close = () => {
    if (current.length > 0) passes.push(current);
    current = [];
  };
  requests.forEach((req, request) => {
    const whole: PassSegment = { request, start: 0, length: req.length };
    if (fits([...current, whole])) {
      current.push(whole);
      return;
    }
    close();
    if (fits([whole])) {
      current = [whole];
      return;
    }
    if (req.decimating) {
      refused.set(
        request,
        `a DeciMamba prompt of ${req.length} tokens needs the whole prompt in one pass, and that does not fit: ${describe([whole])}`,
      );
      return;
    }
    const segment = largestFitting(req.length, (n) => fits([{ request, start: 0, length: n }]));
    if (segment === 0) {
      refused.set(
        request,
        `not even one token fits the memory budget: ${describe([{ request, start: 0, length: 1 }])}`,
      );
      return;
    }
    for (let start = 0; start < req.length; start += segment) {
      const item = { request, start, length: Math.min(segment, req.length - start) };
      if (start + segment < req.length) passes.push([item]);
      else current = [item]; // the last segment may share its pass with the next requests
    }
  });
  close();
  return { passes, refused };
}

/** Largest n in [0, max] with ok(n), for ok monotone (true up to some n). */
export function largestFitting(max: number, ok: (n: number) => boolean): number {
  let lo = 0;
  let hi = max;
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    if (ok(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
