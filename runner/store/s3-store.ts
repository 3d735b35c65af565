// Job inputs and results in S3 (AWS S3, Cloudflare R2, or radosgw locally). Layout under the prefix:
//   inputs/{id}.json   the accepted request, written once at intake
//   results/{id}.json  the result, written once (conditional PUT): a retried job cannot leave two different results
//   ended/{id}.json    jobs that will never have a result (dead-lettered or cancelled)
// Every call retries 5xx, throttling and network errors with backoff for up to `retryForMs`.
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Logger } from 'pino';
import type { RunnerConfig } from '../config.ts';
import type { EndedJob, StoredJob } from './jobs.ts';
import type { RunnerMetrics } from '../metrics.ts';
import type { JobResult } from '../../protocol/results.ts';

export type StoreArea = 'inputs' | 'results' | 'ended';

export class S3UnavailableError extends Error {
  override name = 'S3UnavailableError';
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** 5xx, 429, throttling, and failures with no HTTP answer at all (connection refused, reset, timeout). */
export function isRetryableS3Error(err: unknown): boolean {
  const status = statusOf(err);
  if (status === undefined) return true;
  if (status >= 500 || status === 429) return true;
  return err instanceof S3ServiceException && /SlowDown|Throttl|RequestTimeout/.test(err.name);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class JobStore {
  constructor(
    readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly opts: { retryForMs: number; presignTtlS: number },
    private readonly log: Logger,
    private readonly metrics?: RunnerMetrics,
  ) {}

  static fromConfig(config: RunnerConfig, log: Logger, metrics?: RunnerMetrics): JobStore {
    const client = new S3Client({
      endpoint: config.s3.endpoint,
      region: config.s3.region,
      forcePathStyle: config.s3.forcePathStyle,
      credentials: config.s3.credentials,
      // radosgw answers 411 to aws-chunked bodies with checksum trailers (shared/notes/local-s3-radosgw.md).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1, // retries are ours (below), so each attempt is counted and the total time is bounded
      requestHandler: { connectionTimeout: 2000, requestTimeout: 15_000 },
    });
    return new JobStore(client, config.s3.bucket, config.s3.prefix, config.s3, log, metrics);
  }

  key(area: StoreArea, id: string): string {
    return `${this.prefix}${area}/${id}.json`;
  }

  /**
   * Runs one S3 call, retrying transient failures with exponential backoff (0.1-0.2 s doubling to 2.5-5 s) for the
   * whole of retryForMs: the last wait is cut short so one more attempt is made at the deadline (stopping as soon as
   * the next full wait would pass it gave up after ~1 s of a 5 s budget, issue #13).
   */
  private async call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.opts.retryForMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await fn();
        this.metrics?.s3Requests.inc({ op, outcome: 'ok' });
        return out;
      } catch (err) {
        const status = statusOf(err);
        const retryable = isRetryableS3Error(err);
        this.metrics?.s3Requests.inc({
          op,
          outcome: retryable ? 'retryable_error' : status === undefined ? 'error' : String(status),
        });
        if (!retryable) throw err;
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new S3UnavailableError(
            `S3 ${op} failed after ${attempt + 1} attempts: ${(err as Error).name} ${status ?? ''}`.trim(),
          );
        }
        this.log.warn({ op, status, attempt, err: (err as Error).message }, 's3 call failed; retrying');
        await sleep(Math.min(left, Math.min(5000, 200 * 2 ** attempt) * (0.5 + Math.random() / 2)));
      }
    }
  }

  async ensureBucket(): Promise<void> {
    await this.call('create_bucket', async () => {
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
      } catch (err) {
        const name = (err as Error).name;
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
      }
    });
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  /** Writes the object only if the key is free. 'exists' when someone wrote it first (412). */
  private async putOnce(area: StoreArea, id: string, value: unknown): Promise<'created' | 'exists'> {
    const body = JSON.stringify(value);
    return this.call(`put_${area}`, async () => {
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.key(area, id),
            Body: body,
            ContentType: 'application/json',
            IfNoneMatch: '*',
          }),
        );
        this.metrics?.s3Bytes.inc({ direction: 'out' }, Buffer.byteLength(body));
        return 'created' as const;
      } catch (err) {
        // 412: the key exists. 409: a concurrent conditional write is in flight (S3 asks to retry; the other wins).
        if (statusOf(err) === 412 || statusOf(err) === 409) return 'exists' as const;
        throw err;
      }
    });
  }

  private async getJson<T>(area: StoreArea, id: string): Promise<T | null> {
    return this.call(`get_${area}`, async () => {
      try {
        const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(area, id) }));
        const text = await out.Body!.transformToString();
        this.metrics?.s3Bytes.inc({ direction: 'in' }, Buffer.byteLength(text));
        return JSON.parse(text) as T;
      } catch (err) {
        if (statusOf(err) === 404) return null;
        throw err;
      }
    });
  }

  private async exists(area: StoreArea, id: string): Promise<boolean> {
    return this.call(`head_${area}`, async () => {
      try {
        await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(area, id) }));
        return true;
      } catch (err) {
        if (statusOf(err) === 404) return false;
        throw err;
      }
    });
  }

  putInputOnce(job: StoredJob) {
    return this.putOnce('inputs', job.id, job);
  }

  getInput(id: string) {
    return this.getJson<StoredJob>('inputs', id);
  }

  putResultOnce(id: string, result: JobResult) {
    return this.putOnce('results', id, result);
  }

  getResult(id: string) {
    return this.getJson<JobResult>('results', id);
  }

  hasResult(id: string) {
    return this.exists('results', id);
  }

  /** Ended records may be rewritten (a cancelled job that is later dead-lettered, an operator retry). */
  async putEnded(record: EndedJob): Promise<void> {
    const body = JSON.stringify(record);
    await this.call('put_ended', () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key('ended', record.id),
          Body: body,
          ContentType: 'application/json',
        }),
      ),
    );
  }

  getEnded(id: string) {
    return this.getJson<EndedJob>('ended', id);
  }

  presignResult(id: string): Promise<string> {
    const command = new GetObjectCommand({ Bucket: this.bucket, Key: this.key('results', id) });
    return getSignedUrl(this.client, command, { expiresIn: this.opts.presignTtlS });
  }

  /** Every job id with an object in `area`. */
  async listIds(area: StoreArea): Promise<Set<string>> {
    const prefix = `${this.prefix}${area}/`;
    const ids = new Set<string>();
    await this.call(`list_${area}`, async () => {
      ids.clear();
      for await (const page of paginateListObjectsV2(
        { client: this.client },
        { Bucket: this.bucket, Prefix: prefix },
      )) {
        for (const object of page.Contents ?? []) {
          const key = object.Key ?? '';
          if (key.endsWith('.json')) ids.add(key.slice(prefix.length, -'.json'.length));
        }
      }
    });
    return ids;
  }
}
