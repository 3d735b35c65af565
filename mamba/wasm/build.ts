// Compiles the decode-step kernel (mamba/wasm/assembly/, AssemblyScript) to dist/wasm/mamba-step.wasm with the
// assemblyscript devDependency. Not committed: built where it is needed (the edge model build, which the stack, the
// tests and wrangler's bundle rely on, and on first use in Node), skipped when the sources are unchanged.
//
//   npx tsx mamba/wasm/build.ts
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../..');
const SOURCE_DIR = join(REPO, 'mamba/wasm/assembly');
export const STEP_WASM_PATH = join(REPO, 'dist/wasm/mamba-step.wasm');
const FLAGS = [
  '-O3',
  '--runtime',
  'stub',
  '--enable',
  'simd,relaxed-simd',
  '--noAssert',
  '--use',
  'abort=',
  '--initialMemory',
  '1',
];

async function sourceHash(): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(FLAGS));
  for (const name of (await readdir(SOURCE_DIR)).sort())
    hash.update(name).update(await readFile(join(SOURCE_DIR, name)));
  return hash.digest('hex');
}

/** Returns the .wasm path; `built` is false when it was already up to date. */
export async function buildStepWasm(): Promise<{ path: string; built: boolean }> {
  const hash = await sourceHash();
  const stamp = `${STEP_WASM_PATH}.hash`;
  if ((await readFile(stamp, 'utf8').catch(() => '')) === hash) {
    if (
      await readFile(STEP_WASM_PATH).then(
        () => true,
        () => false,
      )
    )
      return { path: STEP_WASM_PATH, built: false };
  }
  const { default: asc } = await import('assemblyscript/asc');
  await mkdir(join(REPO, 'dist/wasm'), { recursive: true });
  const tmp = `${STEP_WASM_PATH}.${process.pid}.tmp`;
  const stderr: string[] = [];
  const { error } = await asc.main([join(SOURCE_DIR, 'index.ts'), '--outFile', tmp, ...FLAGS], {
    stderr: { write: (s: string | Uint8Array) => stderr.push(String(s)) } as never,
  });
  if (error) throw new Error(`assemblyscript: ${error.message}\n${stderr.join('')}`);
  await rename(tmp, STEP_WASM_PATH); // atomic: parallel test workers never read half a file
  await writeFile(stamp, hash);
  return { path: STEP_WASM_PATH, built: true };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const { path, built } = await buildStepWasm();
  console.log(`${built ? 'built' : 'up to date:'} ${path}`);
}
