// Shared k6 code: the scenario file, env-var parameters, signed runner requests, job submit/poll/fetch.
// Env: SCENARIO, BASE_URL (edge API), API_KEY, JOBS_VIA=edge|runner, RUNNER_URL, RUNNER_HMAC_SECRET, MODEL,
//      VARIANTS=mamba,decimamba, RATE (per second), DURATION, P95_MS, P99_MS, ERROR_RATE, HAYSTACK.
import crypto from 'k6/crypto';
import http from 'k6/http';
import { Rate, Trend } from 'k6/metrics';
import type { Options, Scenario as K6Scenario } from 'k6/options';
import { sleep } from 'k6';
import {
  jobBody,
  parseServerTiming,
  TERMINAL_JOB_STATES,
  type Scenario,
  type ScenarioFile,
  type Variant,
} from '../scenarios/scenario.ts';

export const FILE = JSON.parse(open('../scenarios/scenarios.json')) as ScenarioFile;
export const HAYSTACK = open(__ENV.HAYSTACK ?? '../../models/deciserve-mamba/haystack.txt');

const env = (name: string, fallback: string): string => __ENV[name] ?? fallback;
export const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8787');
export const API_KEY = env('API_KEY', '');
export const MODEL = env('MODEL', FILE.model);
/** edge: POST {BASE_URL}/v1/jobs with the API key; runner: the runner's signed POST {RUNNER_URL}/jobs. */
export const JOBS_VIA = env('JOBS_VIA', 'edge') as 'edge' | 'runner';
const RUNNER_URL = env('RUNNER_URL', 'http://127.0.0.1:8080');
const RUNNER_SECRET = env('RUNNER_HMAC_SECRET', '');

export function scenario(defaultName: string): Scenario {
  const name = env('SCENARIO', defaultName);
  const s = FILE.scenarios[name];
  if (!s) throw new Error(`unknown SCENARIO '${name}' (have: ${Object.keys(FILE.scenarios).join(', ')})`);
  return {
    ...s,
    ratePerSecond: Number(env('RATE', String(s.ratePerSecond))),
    duration: env('DURATION', s.duration),
    variants: env('VARIANTS', s.variants.join(',')).split(',') as Variant[],
    thresholds: {
      ...s.thresholds,
      p95Ms: Number(env('P95_MS', String(s.thresholds.p95Ms))),
      p99Ms: Number(env('P99_MS', String(s.thresholds.p99Ms))),
      errorRate: Number(env('ERROR_RATE', String(s.thresholds.errorRate))),
    },
  };
}

/** A constant-arrival-rate k6 scenario per variant, tagged target + variant. Rates below 1/s use a longer timeUnit. */
export function arrivalScenarios(s: Scenario, target: 'edge' | 'runner'): Record<string, K6Scenario> {
  const out: Record<string, K6Scenario> = {};
  const perMinute = s.ratePerSecond < 1;
  for (const variant of s.variants) {
    out[`${target}_${variant}`] = {
      executor: 'constant-arrival-rate',
      rate: Math.max(1, Math.round(perMinute ? s.ratePerSecond * 60 : s.ratePerSecond)),
      timeUnit: perMinute ? '1m' : '1s',
      duration: s.duration,
      preAllocatedVUs: s.preAllocatedVUs,
      maxVUs: s.maxVUs,
      tags: { target, variant },
      env: { VARIANT: variant },
    };
  }
  return out;
}

export function latencyThresholds(metric: string, s: Scenario, tag: string): Options['thresholds'] {
  return { [`${metric}{${tag}}`]: [`p(95)<${s.thresholds.p95Ms}`, `p(99)<${s.thresholds.p99Ms}`] };
}

export const serverTiming = new Trend('server_timing_ms', true);
export const jobLatency = new Trend('job_latency_ms', true);
export const jobFailed = new Rate('job_failed');

export function recordServerTiming(header: string | undefined, tags: Record<string, string>): void {
  for (const [stage, ms] of Object.entries(parseServerTiming(header))) serverTiming.add(ms, { ...tags, stage });
}

function runnerHeaders(method: string, path: string, body: string): Record<string, string> {
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = `k6${__VU}x${__ITER}x${Math.floor(Math.random() * 1e12)}`;
  const mac = crypto.hmac('sha256', RUNNER_SECRET, `v1\n${ts}\n${nonce}\n${method}\n${path}\n${body}`, 'hex');
  return { 'x-deciserve-timestamp': ts, 'x-deciserve-nonce': nonce, 'x-deciserve-signature': `v1=${mac}` };
}

function jobsRequest(method: 'GET' | 'POST', path: string, body: string, tags: Record<string, string>) {
  if (JOBS_VIA === 'runner') {
    const p = path.replace(/^\/v1/, '');
    return http.request(method, RUNNER_URL + p, body || null, {
      headers: { ...runnerHeaders(method, p, body), 'content-type': 'application/json' },
      tags,
    });
  }
  return http.request(method, BASE_URL + path, body || null, { headers: authHeaders(), tags });
}

export function authHeaders(): Record<string, string> {
  return { 'content-type': 'application/json', ...(API_KEY ? { authorization: `Bearer ${API_KEY}` } : {}) };
}

/** Submit → poll until terminal → fetch the result from S3. Records job_latency_ms and job_failed. */
export function runJob(s: Scenario, prompt: string, variant: Variant, lengthTag: string): void {
  const tags = { target: 'runner', variant, length: lengthTag };
  const started = Date.now();
  const body = JSON.stringify(jobBody(s, MODEL, prompt, variant));
  const submit = jobsRequest('POST', '/v1/jobs', body, { ...tags, stage: 'submit' });
  if (submit.status !== 202 && submit.status !== 200) {
    jobFailed.add(1, tags);
    return;
  }
  const id = (submit.json() as { id: string }).id;
  const poll = s.poll ?? { intervalMs: 2000, timeoutMs: 600_000 };
  let status = 'queued';
  let resultUrl: string | undefined;
  while (Date.now() - started < poll.timeoutMs) {
    sleep(poll.intervalMs / 1000);
    const res = jobsRequest('GET', `/v1/jobs/${id}`, '', { ...tags, stage: 'poll', name: 'GET /v1/jobs/{id}' });
    if (res.status !== 200) continue;
    const view = res.json() as { status: string; result_url?: string };
    status = view.status;
    resultUrl = view.result_url;
    if (TERMINAL_JOB_STATES.includes(status)) break;
  }
  const ok =
    status === 'succeeded' &&
    resultUrl !== undefined &&
    http.get(resultUrl, { tags: { ...tags, stage: 'result', name: 'GET result (S3)' } }).status === 200;
  jobFailed.add(ok ? 0 : 1, tags);
  if (ok) jobLatency.add(Date.now() - started, tags);
}
