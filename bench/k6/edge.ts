// Edge short-context traffic at a constant arrival rate: POST /v1/completions, streaming (SSE) or not.
//   k6 run -e BASE_URL=https://api.example -e API_KEY=... bench/k6/edge.ts                 (scenario edge-short)
//   k6 run -e SCENARIO=edge-stream -e RATE=20 -e DURATION=5m bench/k6/edge.ts
import { check } from 'k6';
import http from 'k6/http';
import { Trend } from 'k6/metrics';
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
  scenario,
} from './lib.ts';

const S = scenario('edge-short');
const ttft = new Trend('time_to_first_byte_ms', true);

export const options: Options = {
  scenarios: arrivalScenarios(S, 'edge'),
  thresholds: {
    ...latencyThresholds('http_req_duration', S, 'target:edge'),
    'http_req_failed{target:edge}': [`rate<${S.thresholds.errorRate || 0.0001}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export default function (): void {
  const variant = __ENV.VARIANT as Variant;
  const tokens = pickLength(FILE.lengthMixes[S.mix]!, Math.random());
  const prompt = promptText(HAYSTACK, tokens, FILE.charsPerToken, Math.random() * HAYSTACK.length);
  const tags = { target: 'edge', variant, length: String(tokens), stream: String(S.stream) };
  const res = http.post(`${BASE_URL}/v1/completions`, JSON.stringify(completionBody(S, MODEL, prompt, variant)), {
    headers: authHeaders(),
    tags,
  });
  ttft.add(res.timings.waiting, tags);
  recordServerTiming(res.headers['Server-Timing'], tags);
  check(
    res,
    {
      'status 200': (r) => r.status === 200,
      'has text': (r) =>
        S.stream
          ? String(r.body).includes('data: [DONE]')
          : Array.isArray((r.json() as { choices?: unknown[] }).choices),
    },
    tags,
  );
}
