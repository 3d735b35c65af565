// Mixed traffic by a length distribution: short prompts to POST /v1/completions, long ones as jobs.
//   k6 run -e BASE_URL=https://api.example -e API_KEY=... bench/k6/mixed.ts
import { check } from 'k6';
import http from 'k6/http';
import type { Options } from 'k6/options';
import { completionBody, pickLength, promptText, type Variant } from '../scenarios/scenario.ts';
import {
  arrivalScenarios,
  authHeaders,
  BASE_URL,
  FILE,
  HAYSTACK,
  latencyThresholds,
  MODEL,
  recordServerTiming,
  runJob,
  scenario,
} from './lib.ts';

const S = scenario('mixed');

export const options: Options = {
  scenarios: arrivalScenarios(S, 'edge'),
  thresholds: {
    ...latencyThresholds('http_req_duration', S, 'target:edge'),
    'http_req_failed{target:edge}': [`rate<${S.thresholds.errorRate || 0.0001}`],
    'job_failed{target:runner}': [`rate<=${S.thresholds.errorRate}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export default function (): void {
  const variant = __ENV.VARIANT as Variant;
  const tokens = pickLength(FILE.lengthMixes[S.mix]!, Math.random());
  const prompt = promptText(HAYSTACK, tokens, FILE.charsPerToken, Math.random() * HAYSTACK.length);
  if (tokens > (S.edgeMaxTokens ?? 2048)) {
    runJob(S, prompt, variant, String(tokens));
    return;
  }
  const tags = { target: 'edge', variant, length: String(tokens) };
  const res = http.post(`${BASE_URL}/v1/completions`, JSON.stringify(completionBody(S, MODEL, prompt, variant)), {
    headers: authHeaders(),
    tags,
  });
  recordServerTiming(res.headers['Server-Timing'], tags);
  check(res, { 'status 200': (r) => r.status === 200 }, tags);
}
