// Benchmark results in the runner's bucket, next to the job results: {S3_PREFIX}bench/{suite}/samples.jsonl + summary.json.
// Configured by the runner's own S3_* environment variables.
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

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
    credentials: env.S3_ACCESS_KEY_ID && env.S3_SECRET_ACCESS_KEY ? { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY } : undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED', // radosgw refuses aws-chunked bodies (see runner/s3-store.ts)
  });
  return { client, bucket: env.S3_BUCKET ?? 'deciserve', prefix: env.S3_PREFIX ?? '' };
}

export const suiteKey = (b: BenchBucket, suite: string, file: string) => `${b.prefix}bench/${suite}/${file}`;

export async function putText(b: BenchBucket, key: string, body: string, contentType: string): Promise<void> {
  await b.client.send(new PutObjectCommand({ Bucket: b.bucket, Key: key, Body: body, ContentType: contentType }));
}

export async function getText(b: BenchBucket, key: string): Promise<string> {
  const res = await b.client.send(new GetObjectCommand({ Bucket: b.bucket, Key: key }));
  return res.Body!.transformToString();
}

/** Summary keys of every stored suite (newest last by key order of the time-prefixed suite ids). */
export async function listSuiteSummaries(b: BenchBucket): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const res = await b.client.send(new ListObjectsV2Command({ Bucket: b.bucket, Prefix: `${b.prefix}bench/`, ContinuationToken: token }));
    for (const o of res.Contents ?? []) if (o.Key?.endsWith('/summary.json')) keys.push(o.Key);
    token = res.NextContinuationToken;
  } while (token);
  return keys.sort();
}
