// The edge's side of the runner's signed job API (runner/README.md): every request signed with
// protocol/signing.ts (HMAC over method, path, timestamp, nonce and body), retried on 503/network errors with a fresh nonce.
// Submissions always carry an Idempotency-Key, so a retried POST is still one job.
import type { JobRequest } from '../protocol/job-request.ts';
import { type JobView, MAX_JOB_WAIT_S } from '../protocol/job-view.ts';
import { signedHeaders } from '../protocol/signing.ts';
import { ApiError } from './http/errors.ts';

/** The runner's job view (protocol/job-view.ts); the edge submits only completion and score jobs. */
export type RunnerJobView = Omit<JobView, 'type'> & { type?: JobRequest['type'] };

export type RunnerAnswer = { ok: true; status: number; view: RunnerJobView } | { ok: false; response: Response };

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const isTerminal = (view: RunnerJobView) => TERMINAL.has(view.status);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RunnerClient {
  private readonly base: URL;

  constructor(
    baseUrl: string,
    private readonly secret: string,
    private readonly attempts = 3,
  ) {
    this.base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  }

  /** A signed request; 503s and network errors are retried, then reported as 503 runner_unavailable. */
  async request(
    method: string,
    path: string,
    init: { body?: string; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const url = new URL(path.replace(/^\//, ''), this.base);
    let last = '';
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (attempt > 0) await sleep(200 * 2 ** (attempt - 1));
      const signed = await signedHeaders(this.secret, { method, path: url.pathname + url.search, body: init.body });
      try {
        const response = await fetch(url, {
          method,
          body: init.body,
          headers: {
            ...signed,
            ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...init.headers,
          },
        });
        if (response.status !== 503 && response.status !== 502 && response.status !== 504) return response;
        last = `HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`;
      } catch (err) {
        last = (err as Error).message;
      }
    }
    throw new ApiError(503, 'server_error', 'runner_unavailable', `the batch runner is unavailable (${last}); retry`);
  }

  /** A runner answer: its JSON when ok, else the response to pass on (a 401 is our deployment's fault: 502). */
  async answer(response: Response): Promise<RunnerAnswer> {
    if (response.ok) return { ok: true, status: response.status, view: (await response.json()) as RunnerJobView };
    // A 401 from the runner means our signature is wrong (a deployment mistake), never the client's fault.
    if (response.status === 401) {
      throw new ApiError(
        502,
        'server_error',
        'runner_rejected_signature',
        'the batch runner refused the edge signature (check RUNNER_HMAC_SECRET)',
      );
    }
    return { ok: false, response };
  }

  // The tenant rides in the query string, which the signature covers, so only the edge can name one.
  async submit(job: JobRequest, idempotencyKey: string, tenant: string, requestId?: string): Promise<RunnerAnswer> {
    const headers: Record<string, string> = {
      'idempotency-key': idempotencyKey,
      ...(requestId ? { 'x-request-id': requestId } : {}),
    };
    return this.answer(
      await this.request('POST', `/jobs?tenant=${encodeURIComponent(tenant)}`, { body: JSON.stringify(job), headers }),
    );
  }

  /** `waitS`: the runner answers when the job ends or after this many seconds (its long-poll, at most 30). */
  async get(id: string, tenant: string, waitS?: number): Promise<RunnerAnswer> {
    const wait = waitS === undefined ? '' : `&wait=${waitS.toFixed(3)}`;
    return this.answer(
      await this.request('GET', `/jobs/${encodeURIComponent(id)}?tenant=${encodeURIComponent(tenant)}${wait}`),
    );
  }

  async cancel(id: string, tenant: string): Promise<RunnerAnswer> {
    return this.answer(
      await this.request('DELETE', `/jobs/${encodeURIComponent(id)}?tenant=${encodeURIComponent(tenant)}`),
    );
  }

  /**
   * Waits until the job ends or `deadline` (epoch ms) passes, on the runner's long-poll: one request per
   * MAX_JOB_WAIT_S, answered as soon as the job ends. Returns the last view seen.
   */
  async waitFor(view: RunnerJobView, deadline: number, tenant: string): Promise<RunnerJobView> {
    let current = view;
    while (!isTerminal(current)) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const answer = await this.get(current.id, tenant, Math.min(left, MAX_JOB_WAIT_S * 1000) / 1000);
      if (!answer.ok) break;
      current = answer.view;
    }
    return current;
  }

  /** The stored result behind a presigned S3 URL (S3 5xx and network errors retried). */
  async result<T>(view: RunnerJobView): Promise<T> {
    let last = '';
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (attempt > 0) await sleep(200 * 2 ** (attempt - 1));
      try {
        const response = await fetch(view.result_url!);
        if (response.ok) return (await response.json()) as T;
        last = `HTTP ${response.status}`;
        if (response.status < 500) break;
      } catch (err) {
        last = (err as Error).message;
      }
    }
    throw new ApiError(
      503,
      'server_error',
      'result_unavailable',
      `the job's result could not be read from storage (${last}); retry`,
    );
  }
}
