// Storage policies against the layout the runner really uses (runner/store/s3-store.ts): lifecycle, CORS, IAM.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { JobStore } from '../../runner/store/s3-store.ts';
import { read, readJson } from './helpers.ts';

// The areas are a type union in s3-store.ts; read them from the source so a new area fails here until covered.
const AREAS = /export type StoreArea = ([^;]+);/
  .exec(read('runner/store/s3-store.ts'))![1]
  .split('|')
  .map((s) => s.trim().replace(/'/g, ''));
const store = new JobStore({} as any, 'bucket', '', { retryForMs: 0, presignTtlS: 1 }, pino({ level: 'silent' }));
const prefixOf = (area: string) => store.key(area as any, 'job_x').replace('job_x.json', '');
const lifecycle = readJson('infra/storage/lifecycle.json');
const days = (area: string) => lifecycle.Rules.find((r: any) => r.Filter?.Prefix === prefixOf(area))?.Expiration?.Days;

describe('storage layout and policies', () => {
  it('knows the runner areas and their key prefixes', () => {
    expect(AREAS).toEqual(['inputs', 'results', 'ended']);
    expect(AREAS.map(prefixOf)).toEqual(['inputs/', 'results/', 'ended/']);
    for (const a of AREAS) expect(read('infra/storage/README.md')).toContain(`\`${prefixOf(a)}{id}.json\``);
  });

  it('lifecycle: every area expires, and inputs no later than results and ended records', () => {
    for (const r of lifecycle.Rules) expect(r.Status).toBe('Enabled');
    for (const a of AREAS) expect(days(a), a).toBeGreaterThan(0);
    // The reconciler re-runs any input without a result or ended record: inputs must never outlive them.
    expect(days('inputs')).toBeLessThanOrEqual(days('results'));
    expect(days('inputs')).toBeLessThanOrEqual(days('ended'));
    expect(lifecycle.Rules.some((r: any) => r.AbortIncompleteMultipartUpload)).toBe(true);
  });

  it('CORS allows only reads of presigned results, from named origins', () => {
    const { CORSRules } = readJson('infra/storage/cors.json');
    for (const rule of CORSRules) {
      expect(rule.AllowedMethods.every((m: string) => m === 'GET' || m === 'HEAD')).toBe(true);
      expect(rule.AllowedOrigins).not.toContain('*');
      expect(rule.AllowedOrigins.every((o: string) => o.startsWith('https://'))).toBe(true);
    }
  });

  const statements = (file: string) => readJson(`infra/storage/${file}`).Statement as any[];
  const objectArns = (file: string) =>
    statements(file)
      .filter((s) => s.Resource !== undefined)
      .flatMap((s) => [s.Resource].flat())
      .filter((r: string) => r.includes('/'));

  it('runner policy: read/write exactly the runner areas, no delete, no bucket admin', () => {
    const st = statements('runner-policy.json');
    const actions = new Set(st.flatMap((s) => [s.Action].flat()));
    expect([...actions].sort()).toEqual(['s3:GetObject', 's3:ListBucket', 's3:PutObject']);
    const arns = objectArns('runner-policy.json');
    expect(arns.map((a: string) => a.replace(/^arn:aws:s3:::[^/]+\//, '').replace(/\*$/, '')).sort()).toEqual(
      AREAS.map(prefixOf).sort(),
    );
    const list = st.find((s) => [s.Action].flat().includes('s3:ListBucket'));
    expect(list.Resource).not.toContain('/');
    expect(list.Condition.StringLikeIfExists['s3:prefix'].sort()).toEqual(AREAS.map((a) => `${prefixOf(a)}*`).sort());
    for (const s of st) expect(s.Effect).toBe('Allow');
    expect(JSON.stringify(st)).not.toMatch(/s3:\*|"\*"|Delete|PutBucket|CreateBucket/);
  });

  it('worker policy: read results only', () => {
    const st = statements('worker-policy.json');
    expect(st.flatMap((s) => [s.Action].flat())).toEqual(['s3:GetObject']);
    expect(objectArns('worker-policy.json').every((a: string) => a.endsWith(`/${prefixOf('results')}*`))).toBe(true);
  });

  it('both policies name the same bucket as the k8s ConfigMap', () => {
    const bucket = /S3_BUCKET: (\S+)/.exec(read('infra/k8s/runner-config.yaml'))![1];
    for (const f of ['runner-policy.json', 'worker-policy.json']) {
      for (const s of statements(f))
        for (const r of [s.Resource].flat()) expect(r).toMatch(new RegExp(`^arn:aws:s3:::${bucket}(/|$)`));
    }
  });
});
