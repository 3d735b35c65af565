// `npm run stack` as a process manager, `timeout` or CI runs it: SIGTERM (or SIGINT) to the npm process alone must stop every
// child (runner, wrangler dev and its workerd, radosgw, Redis) and free their ports. The stack gets its own radosgw
// and Redis (ports and data dirs of its own), so it starts them and must stop them. Both starts print the same
// dev API key (kept in .data/stack/api-key).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { portTaken } from '../../worker/dev/ports.ts';
import { freePort, freshDir, REPO, waitFor } from '../runner/harness.ts';

let npm: ChildProcess | undefined;
let descendants: number[] = [];
let servicesEnv: Record<string, string> | undefined;
const printedKeys: string[] = [];

/** Every live process below `root`, from /proc (ppid links). */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => (children.get(pid) ?? []).forEach((c) => (out.push(c), walk(c)));
  walk(root);
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); // a zombie has exited
  } catch {
    return false;
  }
};

const portFree = async (port: number) => !(await portTaken(port));

afterAll(() => {
  // Only does something if the test failed half way: do not leave a stack (or its radosgw and Redis) behind.
  for (const pid of descendants.filter(alive)) process.kill(pid, 'SIGKILL');
  if (servicesEnv)
    spawnSync(join(REPO, 'infra/local/services.sh'), ['stop'], {
      env: { ...process.env, ...servicesEnv },
      stdio: 'ignore',
    });
});

it.each(['SIGTERM', 'SIGINT'] as const)(
  'stops the edge, runner, radosgw and Redis when the npm process gets %s',
  async (signal) => {
    const ports = {
      edge: await freePort(),
      runner: await freePort(),
      rgw: await freePort(),
      rgwMon: await freePort(),
      redis: await freePort(),
    };
    const dir = await freshDir('stack-signals');
    servicesEnv = {
      RGW_PORT: String(ports.rgw),
      RGW_MON_PORT: String(ports.rgwMon),
      RGW_DIR: `${dir}/rgw`,
      REDIS_PORT: String(ports.redis),
      REDIS_DIR: `${dir}/redis`,
    };
    npm = spawn('npm', ['run', 'stack', '--', '--port', String(ports.edge), '--runner-port', String(ports.runner)], {
      cwd: REPO,
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'DECISERVE_API_KEY')),
        ...servicesEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    npm.stdout!.on('data', (d: Buffer) => (output += d));
    npm.stderr!.on('data', (d: Buffer) => (output += d));
    await waitFor('the stack', () => output.includes('deciserve is up') || npm!.exitCode !== null, 240_000);
    expect(output, output).toContain('starting radosgw (S3) and Redis');
    expect(output, output).toContain('deciserve is up');
    printedKeys.push(/API key +(\S+)/.exec(output)![1]!);
    expect(new Set(printedKeys).size, 'the dev API key stays the same across starts').toBe(1);
    for (const port of Object.values(ports)) expect(await portFree(port), `port ${port} in use`).toBe(false);
    descendants = processTree(npm.pid!);
    const commands = descendants
      .map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '))
      .join('\n');
    expect(commands).toMatch(/runner\/cli\.ts serve/);
    expect(commands).toMatch(/workerd serve/);

    npm.kill(signal); // the npm process only, not its process group
    await waitFor('every child to exit', () => descendants.every((pid) => !alive(pid)), 60_000).catch(() => undefined);
    expect(descendants.filter(alive).map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8'))).toEqual([]);
    // radosgw and Redis run as daemons (not our descendants): their ports say whether they stopped.
    await waitFor(
      'the ports to be free',
      async () => (await Promise.all(Object.values(ports).map(portFree))).every(Boolean),
      30_000,
    ).catch(() => undefined);
    for (const [name, port] of Object.entries(ports))
      expect(await portFree(port), `${name} port ${port} still in use`).toBe(true);
  },
  360_000,
);
