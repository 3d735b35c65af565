// Talks to the public job API: the runner's signed POST /jobs (what the edge API calls), or the edge's
// POST /v1/jobs with an API key once worker/ serves it. Same bodies, same job views.
import { signedHeaders } from '../../protocol/signing.ts';

export interface JobView {
  id: string;
  status: string;
  result_url?: string;
  error?: { message: string; code: string };
  prompt_tokens?: number;
}

export interface JobsEndpoint {
  /** 'runner': {url}/jobs signed with secret; 'edge': {url}/v1/jobs with a bearer API key. */
  via: 'runner' | 'edge';
  url: string;
  secret?: string;
  apiKey?: string;
}

export class JobsClient {
  constructor(private readonly ep: JobsEndpoint) {}

  private async request(
    method: string,
    path: string,
    body?: string,
    extra: Record<string, string> = {},
  ): Promise<Response> {
    const p = this.ep.via === 'runner' ? path : `/v1${path}`;
    const headers: Record<string, string> = { ...extra };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.ep.via === 'runner')
      Object.assign(headers, await signedHeaders(this.ep.secret ?? '', { method, path: p, body }));
    else if (this.ep.apiKey) headers.authorization = `Bearer ${this.ep.apiKey}`;
    // A bounded wait per call: a stalled connection must not hang the poll loop.
    return fetch(this.ep.url + p, { method, body, headers, signal: AbortSignal.timeout(30_000) });
  }

  async submit(job: Record<string, unknown>, idempotencyKey?: string): Promise<JobView> {
    const res = await this.request(
      'POST',
      '/jobs',
      JSON.stringify(job),
      idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
    );
    const body = (await res.json()) as JobView & { error?: { message: string } };
    if (res.status !== 202 && res.status !== 200)
      throw new Error(`submit: HTTP ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
    return body;
  }

  async get(id: string): Promise<JobView> {
    const res = await this.request('GET', `/jobs/${id}`);
    if (!res.ok) throw new Error(`GET job ${id}: HTTP ${res.status}`);
    return (await res.json()) as JobView;
  }

  /** The result, read from S3 through the job's presigned URL. */
  async result<T>(view: JobView): Promise<T> {
    if (!view.result_url) throw new Error(`job ${view.id} has no result_url`);
    const res = await fetch(view.result_url, { signal: AbortSignal.timeout(300_000) });
    if (!res.ok) throw new Error(`result of ${view.id}: HTTP ${res.status}`);
    return (await res.json()) as T;
  }
}
