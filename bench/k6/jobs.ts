// Long-document jobs: submit (POST /v1/jobs), poll GET /v1/jobs/{id}, fetch the result from its presigned S3 URL.
//   k6 run -e BASE_URL=https://api.example -e API_KEY=... bench/k6/jobs.ts
//   k6 run -e JOBS_VIA=runner -e RUNNER_URL=http://127.0.0.1:8080 -e RUNNER_HMAC_SECRET=... bench/k6/jobs.ts   (no edge)
import type { Options } from 'k6/options';
import { pickLength, promptText, type Variant } from '../scenarios/scenario.ts';
import { arrivalScenarios, FILE, HAYSTACK, runJob, scenario } from './lib.ts';

const S = scenario('long-jobs');

export const options: Options = {
  scenarios: arrivalScenarios(S, 'runner'),
  thresholds: {
    'job_latency_ms{target:runner}': [`p(95)<${S.thresholds.p95Ms}`, `p(99)<${S.thresholds.p99Ms}`],
    'job_failed{target:runner}': [`rate<=${S.thresholds.errorRate}`],
    'http_req_duration{stage:submit}': [`p(95)<${S.thresholds.submitP95Ms ?? 1000}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export default function (): void {
  const tokens = pickLength(FILE.lengthMixes[S.mix]!, Math.random());
  const prompt = promptText(HAYSTACK, tokens, FILE.charsPerToken, Math.random() * HAYSTACK.length);
  runJob(S, prompt, __ENV.VARIANT as Variant, String(tokens));
}
