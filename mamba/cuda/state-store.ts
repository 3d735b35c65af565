// Decoding states that stay on the device between steps. MambaEngine states are plain values, so each step writes a
// new slot (the input's slot stays valid for whoever still holds the old state); a returned state downloads itself
// only when someone reads its arrays. Slots are recycled when their state object is garbage-collected, or, when all
// are taken, the least recently used one is first copied to the host (so no state ever loses its value).
import type { LayerState, MambaConfig, ModelState } from '../engine.ts';
import type { DevicePtr } from './bindings/driver.ts';
import type { CudaDevice } from './device.ts';
import { stateWords } from './core.ts';

interface Slot {
  ptr: DevicePtr;
  owner: WeakRef<ModelState> | null;
  lastUse: number;
  pinned: boolean;
}

/** Host view of a device-resident state; materialize() fills the arrays. */
interface ResidentState {
  slot: Slot;
  conv: Float32Array | null;
  ssm: Float32Array | null;
}

export class DeviceStateStore {
  private readonly slots: Slot[] = [];
  private readonly free: Slot[] = [];
  private readonly resident = new WeakMap<ModelState, ResidentState>();
  private readonly finalizer = new FinalizationRegistry<Slot>((slot) => this.release(slot));
  private clock = 0;
  readonly words: { conv: number; ssm: number; total: number };

  constructor(
    private readonly device: CudaDevice,
    private readonly config: MambaConfig,
    private readonly maxSlots: number,
  ) {
    this.words = stateWords(config);
  }

  /** The device slot holding `state`, if it is one of ours and still resident. */
  slotOf(state: ModelState): Slot | null {
    const r = this.resident.get(state);
    return r && r.slot.owner?.deref() === state ? r.slot : null;
  }

  acquire(): Slot {
    let slot = this.free.pop();
    if (!slot && this.slots.length < this.maxSlots) {
      slot = { ptr: this.device.alloc(this.words.total * 4), owner: null, lastUse: 0, pinned: false };
      this.slots.push(slot);
    }
    if (!slot) slot = this.evictOldest();
    slot.lastUse = ++this.clock;
    return slot;
  }

  /** Copies a host state into a slot. */
  upload(slot: Slot, state: ModelState): void {
    const { dInner, dConv, dState } = this.config;
    const conv = new Float32Array(this.words.conv);
    const ssm = new Float32Array(this.words.ssm);
    state.forEach((l, i) => {
      conv.set(l.conv, i * dInner * dConv);
      ssm.set(l.ssm, i * dInner * dState);
    });
    this.device.upload(slot.ptr, conv);
    this.device.upload(slot.ptr + this.words.conv * 4, ssm);
  }

  /** A ModelState backed by `slot`; its arrays are downloaded on first read. */
  wrap(slot: Slot): ModelState {
    const { nLayer, dInner, dConv, dState } = this.config;
    const state: ModelState = [];
    const r: ResidentState = { slot, conv: null, ssm: null };
    const host = () => {
      if (!r.conv) this.materialize(r);
      return r;
    };
    for (let i = 0; i < nLayer; i++) {
      const layer = {} as LayerState;
      Object.defineProperty(layer, 'conv', {
        enumerable: true,
        get: () => host().conv!.subarray(i * dInner * dConv, (i + 1) * dInner * dConv),
      });
      Object.defineProperty(layer, 'ssm', {
        enumerable: true,
        get: () => host().ssm!.subarray(i * dInner * dState, (i + 1) * dInner * dState),
      });
      state.push(layer);
    }
    slot.owner = new WeakRef(state);
    this.resident.set(state, r);
    this.finalizer.register(state, slot, slot);
    return state;
  }

  pin(slot: Slot, on: boolean): void {
    slot.pinned = on;
    slot.lastUse = ++this.clock;
  }

  get slotCount(): number {
    return this.slots.length;
  }

  dispose(): void {
    for (const slot of this.slots) {
      const owner = slot.owner?.deref();
      if (owner) {
        const r = this.resident.get(owner);
        if (r && !r.conv) this.materialize(r); // states outlive the engine as host values
      }
      this.device.free(slot.ptr);
    }
    this.slots.length = 0;
    this.free.length = 0;
  }

  private materialize(r: ResidentState): void {
    r.conv = this.device.download(new Float32Array(this.words.conv), r.slot.ptr);
    r.ssm = this.device.download(new Float32Array(this.words.ssm), r.slot.ptr + this.words.conv * 4);
  }

  private release(slot: Slot): void {
    if (!this.slots.includes(slot) || this.free.includes(slot)) return;
    slot.owner = null;
    this.free.push(slot);
  }

  private evictOldest(): Slot {
    const candidates = this.slots.filter((s) => !s.pinned);
    if (candidates.length === 0) throw new Error('state store: every slot is pinned');
    const slot = candidates.reduce((a, b) => (a.lastUse <= b.lastUse ? a : b));
    const owner = slot.owner?.deref();
    if (owner) {
      const r = this.resident.get(owner);
      if (r && !r.conv) this.materialize(r);
      this.resident.delete(owner);
      this.finalizer.unregister(slot);
    }
    slot.owner = null;
    return slot;
  }
}

export type { Slot as StateSlot };
