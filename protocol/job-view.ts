// A job's status as the runner's GET /jobs/{id} answers it (and the edge's /v1/jobs/{id} passes it on).
import type { RunnerJobRequest } from './job-request.ts';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** The longest `?wait=` one status read may ask for (the runner's long-poll): under common proxy idle timeouts. */
export const MAX_JOB_WAIT_S = 30;

export interface JobView {
  id: string;
  object: 'job';
  type?: RunnerJobRequest['type'];
  status: JobStatus;
  created_at?: number;
  prompt_tokens?: number;
  attempts?: number;
  result_url?: string;
  error?: { message: string; code: string };
}

/** runner/pass/batch-loop.ts stores "code: message" as BullMQ's failedReason; BullMQ's own failures (stalled) have no code. */
export function errorFromReason(reason: string): { message: string; code: string } {
  const m = /^([a-z_]+): ([\s\S]*)$/.exec(reason);
  return m ? { code: m[1]!, message: m[2]! } : { code: 'job_failed', message: reason };
}
