// Kubernetes manifests: every object validated against the Kubernetes OpenAPI schemas (kubernetes-models, K8s 1.27;
// KEDA and Prometheus Operator CRDs from @kubernetes-models/*), then the cross-object wiring that schemas cannot
// see: selectors, Secret/ConfigMap keys, the runner's env vars, GPU requests, graceful termination, autoscaling.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../runner/config.ts';
import { ENGINE_KINDS } from '../../runner/engine/engine-kinds.ts';
import { queueCounts } from '../../runner/store/queue.ts';
import { ROOT, labelMatchers, read, runnerSeriesNames, yamlDocs } from './helpers.ts';

const DIR = 'infra/k8s';
const kustomization = yamlDocs(`${DIR}/kustomization.yaml`)[0];
const objects: any[] = kustomization.resources.flatMap((f: string) => yamlDocs(`${DIR}/${f}`));
const exampleSecret = yamlDocs(`${DIR}/secret.example.yaml`)[0];
const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
const worker = find('Deployment', 'deciserve-runner-worker');
const intake = find('Deployment', 'deciserve-runner-intake');
const configMap = find('ConfigMap', 'deciserve-runner');
const container = (d: any) => d.spec.template.spec.containers[0];
const envOf = (d: any) => Object.fromEntries(container(d).env.map((e: any) => [e.name, e]));

/** The model class for an object's apiVersion/kind, from the schema packages. */
async function modelFor(o: any): Promise<any> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : [null, o.apiVersion];
  const pkg =
    group === 'keda.sh'
      ? '@kubernetes-models/keda'
      : group === 'monitoring.coreos.com'
        ? '@kubernetes-models/prometheus-operator'
        : 'kubernetes-models';
  const mod = await import(`${pkg}/${group ? `${group}/` : ''}${version}/${o.kind}`);
  return mod[o.kind] ?? mod.default;
}

async function schemaErrors(o: any): Promise<string | null> {
  const Model = await modelFor(o);
  try {
    new Model(o).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

describe('Kubernetes manifests', () => {
  it('kustomization lists every manifest in the folder (the example Secret excepted)', () => {
    const files = readdirSync(join(ROOT, DIR)).filter(
      (f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && !f.endsWith('.example.yaml'),
    );
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  it('every object validates against its Kubernetes / CRD schema', async () => {
    expect(objects.length).toBeGreaterThanOrEqual(12);
    for (const o of [...objects, exampleSecret])
      expect(await schemaErrors(o), `${o.kind}/${o.metadata?.name}`).toBeNull();
  });

  it('the schema check rejects a broken object', async () => {
    const broken = structuredClone(worker);
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    expect(await schemaErrors(broken)).toMatch(/containerPort/);
    const noSelector = structuredClone(worker);
    delete noSelector.spec.selector;
    expect(await schemaErrors(noSelector)).toMatch(/selector/);
  });

  it('selectors match their pod templates; Services and PDBs select real pods', () => {
    const pods = objects
      .filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
      .map((o) => o.spec.template.metadata.labels);
    for (const d of objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')) {
      expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels);
    }
    const selects = (sel: Record<string, string>) =>
      pods.some((labels) => Object.entries(sel).every(([k, v]) => labels[k] === v));
    for (const s of objects.filter((o) => o.kind === 'Service'))
      expect(selects(s.spec.selector), `Service ${s.metadata.name}`).toBe(true);
    for (const p of objects.filter((o) => o.kind === 'PodDisruptionBudget'))
      expect(selects(p.spec.selector.matchLabels), `PDB ${p.metadata.name}`).toBe(true);
    const sm = objects.find((o) => o.kind === 'ServiceMonitor');
    const svc = objects.filter(
      (o) =>
        o.kind === 'Service' &&
        Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v),
    );
    expect(svc.map((s) => s.metadata.name)).toEqual(['deciserve-runner-metrics']);
    expect(svc[0].spec.ports.map((p: any) => p.name)).toContain(sm.spec.endpoints[0].port);
  });

  it('runner pods get every required setting, only known ones, and Secret keys that exist', () => {
    // Keys of runner/config.ts's env schema (REDIS_PASSWORD only feeds REDIS_URL through $(REDIS_PASSWORD)).
    const schema = read('runner/config.ts');
    const known = (name: string) => schema.includes(`  ${name}: `) || name === 'REDIS_PASSWORD';
    for (const key of Object.keys(configMap.data)) expect(known(key), `ConfigMap key ${key}`).toBe(true);
    for (const d of [worker, intake]) {
      const env = envOf(d);
      for (const name of Object.keys(env)) expect(known(name), `${d.metadata.name} env ${name}`).toBe(true);
      for (const e of Object.values<any>(env).filter((e) => e.valueFrom?.secretKeyRef)) {
        expect(e.valueFrom.secretKeyRef.name).toBe(exampleSecret.metadata.name);
        expect(Object.keys(exampleSecret.stringData)).toContain(e.valueFrom.secretKeyRef.key);
      }
      expect(container(d).envFrom[0].configMapRef.name).toBe(configMap.metadata.name);
      // The runner's own parser accepts the merged environment (secrets stubbed).
      const merged: Record<string, string> = { ...configMap.data };
      for (const [k, e] of Object.entries<any>(env))
        merged[k] = e.value ?? (k === 'RUNNER_WEBHOOK_SECRET' ? `whsec_${'A'.repeat(44)}` : 'x'.repeat(32));
      const config = configFromEnv(merged);
      expect(config.host).toBe('0.0.0.0');
      expect(config.s3.createBucket).toBe(false);
      expect(env.REDIS_URL.value).toContain('$(REDIS_PASSWORD)');
      // $(VAR) expands only from variables defined earlier in the list.
      const names = container(d).env.map((e: any) => e.name);
      expect(names.indexOf('REDIS_PASSWORD')).toBeLessThan(names.indexOf('REDIS_URL'));
    }
    expect(envOf(worker).RUNNER_ROLES.value).toBe('worker');
    expect(envOf(intake).RUNNER_ROLES.value).toBe('intake');
    expect(ENGINE_KINDS).toContain(envOf(worker).RUNNER_ENGINE.value);
  });

  it('workers request a GPU, run as non-root, and probe the runner endpoints', () => {
    const c = container(worker);
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.resources.requests['nvidia.com/gpu']).toBe(1);
    for (const d of [worker, intake]) {
      expect(d.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
      expect(container(d).readinessProbe.httpGet.path).toBe('/readyz');
      expect(container(d).livenessProbe.httpGet.path).toBe('/healthz');
      expect(container(d).args).toEqual(['serve']);
    }
    expect(intake.spec.template.spec.containers[0].resources.limits?.['nvidia.com/gpu']).toBeUndefined();
  });

  it('termination grace covers a full pass plus shutdown (runner drains on SIGTERM)', () => {
    const idleS = Number(configMap.data.RUNNER_IDLE_POLL_MS) / 1000;
    const preStop = (d: any) => Number(container(d).lifecycle?.preStop?.exec?.command?.[1] ?? 0);
    const maxPass = Number(worker.metadata.annotations['deciserve.dev/max-pass-seconds']);
    expect(maxPass).toBeGreaterThan(0);
    expect(worker.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(
      preStop(worker) + maxPass + idleS + 30,
    );
    // Intake: the preStop sleep lets endpoints drop the pod, then at most one S3 retry budget (5 s) in flight.
    expect(preStop(intake)).toBeGreaterThanOrEqual(5);
    expect(intake.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStop(intake) + 5 + idleS);
    expect(worker.spec.template.spec.containers[0].lifecycle?.preStop).toBeUndefined();
    // Rollouts never drop capacity to zero, and PDBs let KEDA scale workers to 0.
    for (const d of [worker, intake]) expect(d.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(find('PodDisruptionBudget', 'deciserve-runner-worker').spec.maxUnavailable).toBe(1);
  });

  it('KEDA scales the worker Deployment on queue states the runner exports', async () => {
    const so = objects.find((o) => o.kind === 'ScaledObject');
    expect(so.spec.scaleTargetRef.name).toBe(worker.metadata.name);
    expect(worker.spec.replicas).toBeUndefined(); // KEDA owns it; a fixed count would fight the autoscaler
    const trigger = so.spec.triggers[0];
    expect(trigger.type).toBe('prometheus');
    const series = await runnerSeriesNames();
    for (const m of trigger.metadata.query.match(/deciserve_runner_\w+/g)) expect(series.has(m), m).toBe(true);
    // The states queueCounts() actually asks BullMQ for (plus "dead").
    let asked: string[] = [];
    await queueCounts(
      { getJobCounts: async (...s: string[]) => ((asked = s), {}) } as any,
      { count: async () => 0 } as any,
    );
    const states = labelMatchers(trigger.metadata.query).find((m) => m.label === 'state')!.values;
    for (const s of states) expect([...asked, 'dead']).toContain(s);
    expect(states).toEqual(expect.arrayContaining(['waiting', 'prioritized', 'active']));
    expect(Number(trigger.metadata.threshold)).toBe(Number(configMap.data.RUNNER_BATCH_MAX_JOBS));
    expect(so.spec.minReplicaCount).toBe(0);
  });

  it('Redis persists every write (AOF, fsync always, noeviction) on a PVC', () => {
    const conf = find('ConfigMap', 'deciserve-redis').data['redis.conf'];
    expect(conf).toMatch(/^appendonly yes$/m);
    expect(conf).toMatch(/^appendfsync always$/m);
    expect(conf).toMatch(/^maxmemory-policy noeviction$/m);
    const sts = find('StatefulSet', 'deciserve-redis');
    const mount = sts.spec.template.spec.containers[0].volumeMounts.find((m: any) => m.mountPath === '/data');
    expect(sts.spec.volumeClaimTemplates.map((v: any) => v.metadata.name)).toContain(mount.name);
    expect(envOf(worker).REDIS_URL.value).toContain(`${sts.metadata.name}-0.${sts.spec.serviceName}:6379`);
  });

  it('the public Ingress exposes only the signed job API', () => {
    const ing = objects.find((o) => o.kind === 'Ingress');
    const paths = ing.spec.rules.flatMap((r: any) => r.http.paths.map((p: any) => p.path));
    expect(paths).toEqual(['/jobs']);
    expect(read(`${DIR}/runner-intake.yaml`)).not.toMatch(/path: \/metrics/);
  });
});
