// Quality suites in the runner's bucket: the runner stores each suite job's result once at {S3_PREFIX}results/{id}.json
// (per-sample records + summary, runner/pass/suite.ts). `deciserve report --s3` finds them here.
// Configured by the runner's own S3_* environment variables.
import { GetObjectCommand, paginateListObjectsV2, S3Client } from '@aws-sdk/client-s3';

export interface BenchBucket {
  client: S3Client;
  bucket: string;
  prefix: string;
}

export function bucketFromEnv(env: NodeJS.ProcessEnv = process.env): BenchBucket | null {
  if (!env.S3_ENDPOINT && !env.S3_BUCKET) return null;
  const client = new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION ?? 'us-east-1',
    forcePathStyle: env.S3_FORCE_PATH_STYLE !== '0',
    credentials:
      env.S3_ACCESS_KEY_ID && env.S3_SECRET_ACCESS_KEY
        ? { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY }
        : undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED', // radosgw refuses aws-chunked bodies (see runner/store/s3-store.ts)
  });
  return { client, bucket: env.S3_BUCKET ?? 'deciserve', prefix: env.S3_PREFIX ?? '' };
}

/** Bucket and key behind a presigned GET URL: path-style (the runner's default) unless the host starts with `bucket.`. */
export function s3Location(url: string, bucket?: string): { bucket: string; key: string } {
  const u = new URL(url);
  const path = decodeURIComponent(u.pathname.slice(1));
  if (bucket && u.hostname.startsWith(`${bucket}.`)) return { bucket, key: path };
  const [first, ...rest] = path.split('/');
  return { bucket: first!, key: rest.join('/') };
}

export async function getText(b: BenchBucket, key: string, range?: string): Promise<string> {
  const res = await b.client.send(new GetObjectCommand({ Bucket: b.bucket, Key: key, Range: range }));
  return res.Body!.transformToString();
}

/**
 * Keys of stored suite results. Results of every job share results/; a suite's starts with
 * {"id":"job_…","object":"bench_suite" (the runner writes it in that key order), so its first bytes tell it apart
 * without reading every result in full.
 */
export async function listSuiteSummaries(b: BenchBucket): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of paginateListObjectsV2(
    { client: b.client },
    { Bucket: b.bucket, Prefix: `${b.prefix}results/` },
  )) {
    for (const o of page.Contents ?? []) {
      if (!o.Key?.endsWith('.json')) continue;
      if ((await getText(b, o.Key, 'bytes=0-127')).includes('"object":"bench_suite"')) keys.push(o.Key);
    }
  }
  return keys.sort();
}
