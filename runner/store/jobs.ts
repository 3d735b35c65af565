// Job identity and the records a job leaves behind. S3 is the source of truth; Redis only schedules.
import { createHash, randomUUID } from 'node:crypto';
import type { RunnerJobRequest } from '../../protocol/job-request.ts';
import type { PreparedJob } from '../../protocol/prepare-job.ts';

type WithoutIds<T> = T extends unknown ? Omit<T, 'ids'> : never;
/** The engine input intake planned (protocol/prepare-job.ts), with its token ids packed by packTokenIds. */
export type StoredPlan = WithoutIds<PreparedJob> & { ids: string };

/** inputs/{id}.json: written once at intake. */
export interface StoredJob {
  id: string;
  /** Unix milliseconds. */
  created_at: number;
  request: RunnerJobRequest;
  /** sha256 of the validated request; a resubmission with the same Idempotency-Key must match it. */
  request_sha256: string;
  prompt_tokens: number;
  /** Token budget the job takes in a pass: prompt (+ continuation) + max_tokens; a suite's: all its prompt tokens. */
  cost_tokens: number;
  /** Who submitted it (the edge's tenant, from the signed query); absent for operator submissions. */
  tenant?: string;
  /** Completion and score jobs: tokenized and planned once at intake; the pass runs this as it is. Absent on suites
   * (their prompts are built on the engine thread) and on inputs stored before intake planned jobs. */
  plan?: StoredPlan;
}

/** ended/{id}.json: a job that will not produce a result (retries exhausted, or cancelled). Overwritable. */
export interface EndedJob {
  id: string;
  status: 'failed' | 'cancelled';
  error: { message: string; code: string };
  ended_at: number;
  attempts: number;
}

/** What BullMQ carries: small, everything else is read from S3. */
export interface QueueJobData {
  id: string;
  type: RunnerJobRequest['type'];
  cost_tokens: number;
  prompt_tokens: number;
  created_at: number;
  /** Where to POST the signed completion event, if the client asked for one. */
  webhook_url?: string;
  tenant?: string;
}

/** Where a finished job's webhook goes (runner/webhooks/webhooks.ts queues it for delivery). */
export interface WebhookEvents {
  jobFinished(id: string, url: string | undefined): Promise<void>;
}

const ID_PATTERN = /^job_[a-z0-9]{26}$/;

export function isJobId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** Deterministic id for an Idempotency-Key (so every runner maps a resubmission to the same job), else random. */
export function jobIdFor(idempotencyKey: string | undefined): string {
  const source = idempotencyKey === undefined ? randomUUID() : `idem:${idempotencyKey}`;
  const digest = createHash('sha256').update(source).digest();
  let out = '';
  for (let i = 0; i < 26; i++) out += 'abcdefghijklmnopqrstuvwxyz0123456789'[digest[i]! % 36];
  return `job_${out}`;
}

export function requestSha256(request: RunnerJobRequest): string {
  return createHash('sha256').update(canonicalJson(request)).digest('hex');
}

/** JSON with sorted keys, so equal requests hash equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Token ids as one string for the JSON input: little-endian u16 (every id < 65,536, as in the shipped 4,096-token
 * vocabulary) or u32, base64; 2.7 characters a token for u16, about what the prompt's own text takes.
 */
export function packTokenIds(ids: readonly number[]): string {
  const wide = ids.some((id) => id > 0xffff);
  const bytes = Buffer.from((wide ? Uint32Array : Uint16Array).from(ids).buffer);
  return `${wide ? 'u32' : 'u16'}:${bytes.toString('base64')}`;
}

export function unpackTokenIds(packed: string): number[] {
  const [width, data] = packed.split(':', 2) as [string, string];
  const bytes = Buffer.from(data, 'base64');
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength); // aligned for the view
  if (width === 'u16') return Array.from(new Uint16Array(copy));
  if (width === 'u32') return Array.from(new Uint32Array(copy));
  throw new Error(`unknown token id packing "${width}"`);
}

export function storePlan(plan: PreparedJob): StoredPlan {
  return { ...plan, ids: packTokenIds(plan.ids) };
}

export function loadPlan(stored: StoredPlan): PreparedJob {
  return { ...stored, ids: unpackTokenIds(stored.ids) } as PreparedJob;
}
