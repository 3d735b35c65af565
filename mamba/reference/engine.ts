// The reference Mamba-1 / DeciMamba engine: plain TypeScript, the oracle the ONNX and CUDA engines are checked against.
import type { MambaConfig, MambaWeights, ModelState, PrefillOptions, PrefillResult } from '../engine.ts';
import { EngineInputError } from '../engine.ts';
import { SequentialEngine, type SequenceStep } from '../engine-base.ts';
import { emptyState, validateRequest } from '../engine-input.ts';
import { forward, logitsAt, prepareModel, type ReferenceModel } from './forward.ts';

export { EngineInputError };

/**
 * Prefill and decode run the same forward (forward.ts), over L tokens from a zero state or over one token from a
 * given state; the engine contract's checks (engine-base.ts) run before it.
 */
export class ReferenceEngine extends SequentialEngine {
  readonly name = 'reference';
  private readonly model: ReferenceModel;

  constructor(
    readonly config: MambaConfig,
    weights: MambaWeights,
  ) {
    super();
    if (weights.layers.length !== config.nLayer) {
      throw new EngineInputError(`weights have ${weights.layers.length} layers, config says ${config.nLayer}`);
    }
    this.model = prepareModel(config, weights);
  }

  static fromCheckpoint(checkpoint: { config: MambaConfig; weights: MambaWeights }): ReferenceEngine {
    return new ReferenceEngine(checkpoint.config, checkpoint.weights);
  }

  /** All-zero conv and ssm states: the state before the first token. */
  emptyState(): ModelState {
    return emptyState(this.config);
  }

  protected async prefillOne(ids: ArrayLike<number>, options: PrefillOptions): Promise<PrefillResult> {
    const req = validateRequest(ids, options, this.config);
    const result = forward(this.model, req.ids, this.emptyState(), req.decimation, req.protect);
    const positions = req.positions;
    const rowOf = new Map(Array.from(result.positions, (p, row) => [p, row] as const));
    const logits = positions.map((p) => {
      const row = rowOf.get(p);
      if (row === undefined) {
        throw new EngineInputError(
          `prefill: logits requested at position ${p}, which decimation dropped (raise protect to cover it)`,
        );
      }
      return logitsAt(this.model, result.final, row);
    });
    return { positions, logits, state: result.state, kept: result.kept };
  }

  async stepOne(token: number, state: ModelState): Promise<SequenceStep> {
    const result = forward(this.model, [token], state, null, 0);
    return { logits: logitsAt(this.model, result.final, 0), state: result.state };
  }
}
