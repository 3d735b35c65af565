// The mma decode step (engine option mmaStep, kernels/step-mma.cu: in_proj on the tensor cores with conv_step and
// x_proj's partial sums fused) on the CPU emulator, bf16 build, where mma.sync is emulated lane by lane through
// shuffles in the PTX fragment layout: a batch of 19 (a full tile of 16 sequences and a partial one of 3) against the
// reference engine over four steps: logits within the bf16 tolerance of cuda-emulator-bf16.test.ts, states within
// 1.5× the six launches' own bf16 error. Needs g++.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CudaEngine as CudaEngineType } from '../mamba/cuda/engine.ts';
import { argmax } from '../mamba/sampling.ts';
import { CXX, emulatedCudaEngine } from './cuda-emulator-setup.ts';
import { maxAbsDiff, maxStateDiff, randomIds, tinyModel, type TinyModel } from './helpers.ts';

const CudaEngine = emulatedCudaEngine();

describe.skipIf(!CXX)('mma decode step on the CPU emulator (bf16)', () => {
  let m: TinyModel;
  let engine: CudaEngineType;
  beforeAll(() => {
    // d_model 64: one 16-wide k step for each of a block's four k parts; in_proj biases on
    m = tinyModel({ dModel: 64, nLayer: 2, dState: 16, seed: 21, biases: true });
    engine = CudaEngine().create(m.config, m.weights, { precision: 'bf16', guardBytes: 256 });
  });
  afterAll(async () => engine?.dispose());

  const partials = { step_in_proj_conv_mma: 1, step_dt_ssm: 1, gemm_x_proj: undefined, ssm_step_dt: undefined };
  const gemm = { step_in_proj_conv_mma: 1, step_dt_ssm: undefined, gemm_x_proj: 1, ssm_step_dt: 1 };
  // x_proj and out_proj as step_gemm_mma (x_proj's 36 columns: two full blocks of 16 rows and one of 4), with the
  // mma step's 'gemm' form and with the six launches' cuBLAS in_proj and conv_step
  const gemms = { mma_x_proj: 1, mma_out_proj: 1, gemm_x_proj: undefined, gemm_out_proj: undefined };
  const sixGemms = { ...gemms, gemm_in_proj: 1, conv_step: 1, step_in_proj_conv_mma: undefined, ssm_step_dt: 1 };
  // a span of 5 sequences a block: four blocks down the batch, the last one short, each with a partial tile
  it.each([
    { form: 'partials', span: undefined, mmaGemms: false, launches: partials },
    { form: 'gemm', span: undefined, mmaGemms: false, launches: gemm },
    { form: 'partials', span: 5, mmaGemms: false, launches: partials },
    { form: 'gemm', span: undefined, mmaGemms: true, launches: { ...gemm, ...gemms } },
    { form: false, span: undefined, mmaGemms: true, launches: sixGemms },
  ] as const)(
    'steps 19 sequences as the reference does ($form, span $span, mma GEMMs $mmaGemms)',
    async ({ form, span, mmaGemms, launches }) => {
      const { vocabSize, nLayer } = m.config;
      const prompts = Array.from({ length: 19 }, (_, i) => randomIds(5 + ((3 * i) % 11), vocabSize, 40 + i));
      const pre = await engine.prefillBatch(prompts.map((ids) => ({ ids })));
      const session = engine.openDecode(
        pre.map((p) => p.state),
        { mmaStep: form, fusedStep: false, ssmSeqs: 4, mmaSeqSpan: span, mmaGemms },
      );
      expect([session.mma, session.fused, session.mmaSeqSpan, session.mmaGemms]).toEqual([
        form || null,
        false,
        span ?? 19,
        mmaGemms,
      ]);
      // the six launches' own bf16 error is the yardstick for the states, which show x_proj's sums (dt, B and C) more
      // than this model's logits do
      const six = engine.openDecode(
        pre.map((p) => p.state),
        { fusedStep: false, mmaStep: false },
      );
      let refStates = (await m.engine.prefillBatch(prompts.map((ids) => ({ ids })))).map((p) => p.state);
      let tokens = pre.map((p) => argmax(p.logits[0]!));
      const device = engine.core.device;
      for (let step = 0; step < 4; step++) {
        if (step === 0) {
          device.enableProfiler(true);
          device.profiler!.begin();
        }
        const out = await session.step(tokens, { logits: true });
        if (step === 0) {
          const calls = Object.fromEntries(device.profiler!.collect().map((t) => [t.label, t.calls]));
          device.enableProfiler(false);
          // per layer: add_rmsnorm, the mma launch, then step_dt_ssm or the x_proj GEMM and ssm_step_dt (4 a thread)
          const perLayer = { add_rmsnorm: 1, gemm_in_proj: undefined, conv_step: undefined, ...launches };
          for (const [label, n] of Object.entries(perLayer))
            expect(calls[label === 'ssm_step_dt' ? 'ssm_step_dt_s4' : label], label).toBe(n && n * nLayer);
        }
        await six.step(tokens);
        const refs = await Promise.all(tokens.map((t, b) => m.engine.step(t, refStates[b]!)));
        const range = Math.max(...refs.flatMap((r) => Array.from(r.logits, Math.abs)));
        refs.forEach((r, b) => {
          const row = out.logits!.subarray(b * vocabSize, (b + 1) * vocabSize);
          expect(maxAbsDiff(row, r.logits), `step ${step} sequence ${b}`).toBeLessThan(0.03 * range);
        });
        refStates = refs.map((r) => r.state);
        tokens = refs.map((r) => argmax(r.logits));
      }
      const stateError = (s: typeof session) => Math.max(...refStates.map((r, b) => maxStateDiff(s.state(b), r)));
      expect(stateError(session)).toBeLessThan(1.5 * stateError(six));
      session.dispose();
      six.dispose();
    },
  );

  it('is left out where it does not fit: d_model not a multiple of 64, or f32 activations; a span must be whole', () => {
    const odd = tinyModel({ dModel: 48, nLayer: 1, dState: 16, seed: 3 });
    const oddEngine = CudaEngine().create(odd.config, odd.weights, { precision: 'bf16' });
    const f32Engine = CudaEngine().create(m.config, m.weights, { precision: 'fp32' });
    try {
      for (const e of [oddEngine, f32Engine]) {
        const s = e.openDecode([e.emptyState(), e.emptyState()], {
          mmaStep: 'partials',
          fusedStep: false,
          mmaGemms: true, // d_inner 96 is not whole 128-wide parts of k; f32 has no bf16 tiles
        });
        expect([s.mma, s.mmaGemms]).toEqual([null, false]);
        s.dispose();
      }
      const states = [engine.emptyState(), engine.emptyState()];
      for (const mmaSeqSpan of [0, 1.5])
        expect(() => engine.openDecode(states, { mmaStep: 'partials', mmaSeqSpan })).toThrow(/mmaSeqSpan/);
    } finally {
      oddEngine.dispose();
      f32Engine.dispose();
    }
  });
});
