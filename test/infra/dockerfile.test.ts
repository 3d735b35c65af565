// The runner image cannot be built here (no Docker engine), so its Dockerfile is checked statically: pinned bases,
// every COPY source present and not excluded, non-root USER, HEALTHCHECK, and an entry point (the esbuild bundle)
// whose whole import graph reaches the build stage, with its packages among the production dependencies.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildRunner } from '../../runner/build.ts';
import { ENGINE_KINDS } from '../../runner/engine/engine-kinds.ts';
import {
  ROOT,
  importClosure,
  parseDockerfile,
  read,
  readJson,
  splitArgs,
  walkFiles,
  type Instruction,
} from './helpers.ts';

const DOCKERFILE = 'infra/runner/Dockerfile';
const instructions = parseDockerfile(read(DOCKERFILE));
const stages: Instruction[][] = [];
for (const i of instructions) {
  if (i.cmd === 'FROM') stages.push([]);
  stages.at(-1)?.push(i);
}
const final = stages.at(-1)!;
const stageNames = new Set(stages.map((s) => splitArgs(s[0].args).words[2]).filter(Boolean));

/** Allow-list .dockerignore: `*` then `!path` re-includes; later plain patterns exclude again. */
function dockerignored(path: string): boolean {
  const patterns = read('infra/runner/Dockerfile.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let excluded = false;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    const pat = (negate ? p.slice(1) : p).replace(/\/$/, '');
    const re = new RegExp(
      `^${pat
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '\0')
        .replace(/\*/g, '[^/]*')
        .replace(/\0/g, '(?:.*/)?')}(?:/.*)?$`,
    );
    if (re.test(path)) excluded = !negate;
  }
  return excluded;
}

/** Files of a stage (default the final image), as image path → repo path, from its COPY instructions (context sources only). */
function imageFiles(stage: Instruction[] = final): Map<string, string> {
  const files = new Map<string, string>();
  let workdir = '/';
  for (const i of stage) {
    if (i.cmd === 'WORKDIR') workdir = posix.resolve(workdir, i.args);
    if (i.cmd !== 'COPY') continue;
    const { flags, words } = splitArgs(i.args);
    if (flags.from) continue;
    const dest = posix.resolve(workdir, words.at(-1)!);
    for (const src of words.slice(0, -1)) {
      for (const file of walkFiles(src.replace(/\/$/, ''))) {
        if (dockerignored(file)) continue;
        const isDir = src.endsWith('/') || words.length > 2 || words.at(-1)!.endsWith('/');
        const rel = file.slice(src.replace(/\/$/, '').length).replace(/^\//, '');
        files.set(isDir ? posix.join(dest, rel || posix.basename(file)) : dest, file);
      }
    }
  }
  return files;
}

describe('runner Dockerfile', () => {
  it('pins every base image to an exact version (no latest, no floating major)', () => {
    for (const s of stages) {
      const image = splitArgs(s[0].args).words[0];
      if (stageNames.has(image)) continue;
      expect(image, `line ${s[0].line}`).toMatch(/(@sha256:[0-9a-f]{64}|:\d+\.\d+\.\d+[-\w.]*)$/);
    }
  });

  it('runs on a CUDA runtime base with Node 22+', () => {
    expect(splitArgs(final[0].args).words[0]).toMatch(/^nvidia\/cuda:[\d.]+-(cudnn-)?runtime-/);
    const nodeFrom = stages.map((s) => splitArgs(s[0].args).words[0]).find((img) => img.startsWith('node:'));
    expect(Number(/^node:(\d+)/.exec(nodeFrom ?? '')?.[1])).toBeGreaterThanOrEqual(22);
    // Every node stage runs the exact Node that CI tests with (.ci/run's NODE22_VERSION).
    const ciNode = /^NODE22_VERSION=(\S+)$/m.exec(read('.ci/run'))?.[1];
    expect(ciNode).toMatch(/^22\.\d+\.\d+$/);
    const nodeStages = stages.map((s) => splitArgs(s[0].args).words[0]).filter((img) => img.startsWith('node:'));
    for (const img of nodeStages) expect(img).toBe(`node:${ciNode}-bookworm-slim`);
    expect(final.some((i) => i.cmd === 'COPY' && /--from=\w+.*\/usr\/local\/bin\/node/.test(i.args))).toBe(true);
  });

  it('copies only files that exist and that the dockerignore allow-list lets in', () => {
    for (const i of final.concat(stages.flat()).filter((i) => i.cmd === 'COPY' && !splitArgs(i.args).flags.from)) {
      for (const src of splitArgs(i.args).words.slice(0, -1)) {
        expect(existsSync(join(ROOT, src)), `COPY ${src} (line ${i.line}) is missing`).toBe(true);
        expect(dockerignored(src.replace(/\/$/, '')), `COPY ${src} is excluded by Dockerfile.dockerignore`).toBe(false);
      }
    }
    expect(dockerignored('node_modules/x')).toBe(true);
    expect(dockerignored('.data/redis-6390/appendonly.aof')).toBe(true);
    expect(dockerignored('bench/results/onnx-bench.json')).toBe(true);
    expect(dockerignored('mamba/onnx/export/x.test.ts')).toBe(true);
  });

  it('does not run as root and has a HEALTHCHECK on /healthz', () => {
    const user = final.filter((i) => i.cmd === 'USER').at(-1)?.args ?? 'root';
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    const hc = final.find((i) => i.cmd === 'HEALTHCHECK');
    expect(hc?.args).toMatch(/\/healthz/);
    expect(hc?.args).toMatch(/RUNNER_PORT/);
  });

  it('runs the esbuild bundle of the runner, built from sources whose whole import graph is in the build stage', () => {
    const exec = (cmd: string) => splitArgs(final.find((i) => i.cmd === cmd)!.args).words;
    const [bin, ...argv] = [...exec('ENTRYPOINT'), ...exec('CMD')];
    expect(bin).toBe('node');
    expect(argv).toEqual(['dist/runner/cli.js', 'serve']); // plain JS, no tsx at run time
    const fromBuild = final.find((i) => i.cmd === 'COPY' && /--from=build\b/.test(i.args));
    expect(fromBuild?.args).toMatch(/\/app\/dist\/runner\/? \.\/dist\/runner\/?$/);
    const build = stages.find((s) => / AS build$/i.test(s[0].args))!;
    expect(build.some((i) => i.cmd === 'RUN' && /npm run build:runner/.test(i.args))).toBe(true);
    expect(readJson('package.json').scripts['build:runner']).toMatch(/runner\/build\.ts/);
    const buildFiles = new Set(imageFiles(build).values());
    // The engine thread is a second entry point of the bundle (runner/build.ts).
    const closure = importClosure('runner/cli.ts');
    for (const f of importClosure('runner/engine/engine-thread.ts').files) closure.files.add(f);
    for (const f of closure.files)
      expect(buildFiles.has(f), `${f} (imported by the runner) is not in the build stage`).toBe(true);
    const pkg = readJson('package.json');
    for (const p of closure.packages)
      expect(pkg.dependencies[p], `${p} must be a production dependency (npm ci --omit=dev)`).toBeDefined();
  });

  it('carries the model and the CUDA kernel sources', () => {
    const env = final
      .filter((i) => i.cmd === 'ENV')
      .map((i) => i.args)
      .join(' ');
    const modelDir = /RUNNER_MODEL_DIR=(\S+)/.exec(env)?.[1];
    expect(modelDir).toBeDefined();
    const files = imageFiles();
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json'])
      expect(files.has(posix.join(modelDir!, f)), f).toBe(true);
    // mamba/cuda/kernels/ (NVRTC sources) must be covered by a COPY and not excluded, whether or not it exists yet.
    expect(dockerignored('mamba/cuda/kernels/scan.cu')).toBe(false);
    expect(final.some((i) => i.cmd === 'COPY' && /(^|\s)mamba\/(cuda\/(kernels\/)?)?\s/.test(`${i.args} `))).toBe(true);
    for (const k of walkFiles('mamba/cuda/kernels')) expect([...files.values()]).toContain(k);
  });

  it('configures the runner through environment variables only, without secrets baked in', () => {
    const env = final
      .filter((i) => i.cmd === 'ENV')
      .flatMap((i) => i.args.split(/\s+/))
      .map((kv) => kv.split('=')[0]);
    const schema = read('runner/config.ts');
    for (const k of env.filter((k) => /^(RUNNER|S3|REDIS)_/.test(k)))
      expect(schema, `${k} is not a runner setting`).toContain(`  ${k}: `);
    for (const k of env) expect(k).not.toMatch(/SECRET|PASSWORD|ACCESS_KEY/);
    expect(env).toContain('RUNNER_HOST'); // the default 127.0.0.1 would be unreachable from outside the container
    const engine = /RUNNER_ENGINE=(\S+)/.exec(
      final
        .filter((i) => i.cmd === 'ENV')
        .map((i) => i.args)
        .join(' '),
    )?.[1];
    expect(ENGINE_KINDS).toContain(engine);
  });

  it('the bundled entry point starts and documents its configuration (--help)', async () => {
    const bundle = await buildRunner(join(ROOT, 'test/.tmp/dockerfile-bundle'));
    const out = execFileSync(process.execPath, [join(bundle, 'cli.js'), '--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(out).toMatch(/RUNNER_HMAC_SECRET/);
  });

  it('the parser catches a broken Dockerfile', () => {
    const broken = parseDockerfile('FROM nvidia/cuda:latest\nUSER root\nCOPY nope/ ./x/\n');
    expect(splitArgs(broken[0].args).words[0]).not.toMatch(/:\d+\.\d+\.\d+/);
    expect(existsSync(join(ROOT, 'nope'))).toBe(false);
  });
});
