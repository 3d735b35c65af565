// Installs bench/peers' own dependencies (node-llama-cpp + its prebuilt linux-x64 CPU binary) on first use, so the
// project's root `npm ci` stays free of them. NODE_LLAMA_CPP_SKIP_DOWNLOAD makes its postinstall a no-op (it would
// otherwise try to download or build llama.cpp); --omit=optional skips the CUDA/Vulkan/ARM builds (~640 MB).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const PEERS_DIR = import.meta.dirname;

export function ensurePeerDeps(log: (msg: string) => void): void {
  if (existsSync(join(PEERS_DIR, 'node_modules', 'node-llama-cpp', 'package.json'))) return;
  log('installing bench/peers dependencies (npm install --omit=optional, NODE_LLAMA_CPP_SKIP_DOWNLOAD=true)');
  // `npm install`, not `npm ci`: npm 11.19's ci refuses this lockfile ("Missing: @node-llama-cpp/win-x64@ from lock
  // file", the optional platform builds it leaves out); install reads the same lockfile and leaves it unchanged.
  const r = spawnSync('npm', ['install', '--omit=optional', '--no-audit', '--no-fund'], {
    cwd: PEERS_DIR,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
  });
  if (r.status !== 0) throw new Error(`npm install in bench/peers failed (exit ${r.status})`);
}
