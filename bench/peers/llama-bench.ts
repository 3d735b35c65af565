// llama.cpp's native llama-bench (built from the source node-llama-cpp ships by build-llama-bench.sh), one
// invocation per measurement so its runs interleave with ours. Returns tokens/s of the one repetition.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PEERS_DIR } from './install.ts';

export const LLAMA_BENCH = join(PEERS_DIR, '.llama.cpp', 'build', 'bin', 'llama-bench');

/** The binary, building it first when `build` is set; null when it is absent (or the build failed). */
export function findLlamaBench(build: boolean, log: (m: string) => void): string | null {
  if (existsSync(LLAMA_BENCH)) return LLAMA_BENCH;
  if (!build) return null;
  log('building llama-bench (bench/peers/build-llama-bench.sh; several minutes on 2 cores)');
  const r = spawnSync(join(PEERS_DIR, 'build-llama-bench.sh'), { stdio: ['ignore', 'ignore', 'inherit'] });
  return r.status === 0 && existsSync(LLAMA_BENCH) ? LLAMA_BENCH : null;
}

/** One llama-bench run: prompt processing of `prompt` tokens (gen 0), or generation of `gen` tokens (prompt 0). */
export function llamaBenchTps(
  bin: string,
  model: string,
  opts: { prompt: number; gen: number; threads: number },
): number {
  const args = [
    '-m',
    model,
    '-t',
    String(opts.threads),
    '-p',
    String(opts.prompt),
    '-n',
    String(opts.gen),
    '-r',
    '1',
    '-o',
    'json',
  ]; // llama-bench's default batch 2048 / ubatch 512
  const r = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`llama-bench failed (exit ${r.status}): ${r.stderr.slice(-400)}`);
  const rows = JSON.parse(r.stdout) as { avg_ts: number }[];
  if (rows.length !== 1) throw new Error(`llama-bench printed ${rows.length} rows, expected 1`);
  return rows[0].avg_ts;
}
