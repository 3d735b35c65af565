// Small statistics for reported accuracies: every headline accuracy carries n and a 95% interval.

/** Wilson score interval for k successes out of n (95% by default); [0, 1] when n is 0. */
export function wilsonInterval(k: number, n: number, z = 1.959964): [number, number] {
  if (n === 0) return [0, 1];
  const p = k / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** "95% (114/120, 89–98%)" */
export function formatAccuracy(k: number, n: number): string {
  const [lo, hi] = wilsonInterval(k, n);
  const pct = (x: number) => Math.round(100 * x);
  return `${pct(k / n)}% (${k}/${n}, ${pct(lo)}–${pct(hi)}%)`;
}
