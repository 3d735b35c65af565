// The scenario schema and the request builders shared by the k6 scripts (bench/k6/) and the local driver (bench/load/).
// No imports on purpose: this file must run in k6's JS runtime as well as in Node.

export type Variant = 'mamba' | 'decimamba';
export type TargetKind = 'edge' | 'runner';

export interface LengthBucket {
  tokens: number;
  weight: number;
}

export interface Thresholds {
  p95Ms: number;
  p99Ms: number;
  /** Fraction of failed requests (or jobs) allowed. */
  errorRate: number;
  /** Jobs only: p95 of the submit request itself. */
  submitP95Ms?: number;
}

export interface Scenario {
  description: string;
  /** edge: the public API (worker/); runner: long-document jobs (edge /v1/jobs, or the runner's signed /jobs). */
  target: TargetKind;
  kind: 'completion' | 'score';
  stream: boolean;
  mix: string;
  /** mixed only: prompts longer than this become jobs. */
  edgeMaxTokens?: number;
  maxTokens: number;
  variants: Variant[];
  ratePerSecond: number;
  duration: string;
  preAllocatedVUs: number;
  maxVUs: number;
  poll?: { intervalMs: number; timeoutMs: number };
  thresholds: Thresholds;
}

export interface ScenarioFile {
  charsPerToken: number;
  haystack: string;
  model: string;
  lengthMixes: Record<string, LengthBucket[]>;
  scenarios: Record<string, Scenario>;
}

/** Picks a prompt length from a weighted mix; `u` is uniform in [0, 1). */
export function pickLength(mix: LengthBucket[], u: number): number {
  const total = mix.reduce((a, b) => a + b.weight, 0);
  let x = u * total;
  for (const b of mix) {
    if (x < b.weight) return b.tokens;
    x -= b.weight;
  }
  return mix[mix.length - 1]!.tokens;
}

/** Held-out text of about `tokens` tokens, starting at `offset` (wrapping), so requests differ. */
export function promptText(haystack: string, tokens: number, charsPerToken: number, offset: number): string {
  const chars = Math.max(1, Math.round(tokens * charsPerToken));
  const start = Math.abs(Math.floor(offset)) % haystack.length;
  let out = haystack.slice(start, start + chars);
  while (out.length < chars) out += haystack.slice(0, chars - out.length);
  return out;
}

/** "30s", "2m", "1h" → seconds. */
export function durationSeconds(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d.trim());
  if (!m) throw new Error(`bad duration '${d}' (use e.g. 30s, 2m)`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 's' ? n : m[2] === 'm' ? n * 60 : n * 3600;
}

/** decimamba = DeciMamba forced on; mamba = off (plain Mamba), whatever the length. */
export const decimationFor = (v: Variant): 'on' | 'off' => (v === 'decimamba' ? 'on' : 'off');

/** Body of POST /v1/completions (edge, OpenAI-compatible plus `decimation`). */
export function completionBody(s: Scenario, model: string, prompt: string, variant: Variant): Record<string, unknown> {
  return {
    model,
    prompt,
    max_tokens: s.maxTokens,
    temperature: 0,
    stream: s.stream,
    decimation: decimationFor(variant),
  };
}

/** Body of a job (edge POST /v1/jobs and the runner's signed POST /jobs take the same fields). */
export function jobBody(
  s: Scenario,
  model: string,
  prompt: string,
  variant: Variant,
  tags: Record<string, string> = {},
): Record<string, unknown> {
  return {
    type: s.kind,
    model,
    prompt,
    max_tokens: s.maxTokens,
    temperature: 0,
    decimation: decimationFor(variant),
    metadata: { bench: 'load', variant, ...tags },
  };
}

/** Splits on `sep` outside double quotes (Server-Timing descriptions may contain commas). */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (ch === sep && !quoted) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

/** Parses a Server-Timing header into {stage: ms}: `engine;dur=12.3, s3;dur=4` → {engine: 12.3, s3: 4}. */
export function parseServerTiming(header: string | null | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!header) return out;
  for (const part of splitOutsideQuotes(header, ',')) {
    const [name, ...params] = splitOutsideQuotes(part, ';').map((x) => x.trim());
    if (!name) continue;
    for (const p of params) {
      const [k, v] = p.split('=');
      if (k === 'dur' && v !== undefined && Number.isFinite(Number(v))) out[name] = (out[name] ?? 0) + Number(v);
    }
  }
  return out;
}

export const TERMINAL_JOB_STATES = ['succeeded', 'failed', 'cancelled'];
