// A thin, typed layer over the ONNX protobuf schema (onnx-proto). It only assembles NodeProto/GraphProto/TensorProto
// objects; the encoding itself is done by onnx-proto's generated protobufjs code.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type INodeProto = onnxProto.onnx.INodeProto;
type IGraphProto = onnxProto.onnx.IGraphProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IValueInfoProto = onnxProto.onnx.IValueInfoProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

export const DType = {
  float: onnx.TensorProto.DataType.FLOAT,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
} as const;
export type DTypeCode = (typeof DType)[keyof typeof DType];

/** A dimension: a fixed size or a symbolic name (dynamic). */
export type Dim = number | string;

export type AttrValue = number | number[] | string | IGraphProto | { float: number } | { floats: number[] };

/** Marks a number attribute as FLOAT (plain numbers are INT). */
export const f = (value: number): { float: number } => ({ float: value });

function attribute(name: string, value: AttrValue): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'number') return { name, type: T.INT, i: value };
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if ('float' in value) return { name, type: T.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: T.FLOATS, floats: value.floats };
  return { name, type: T.GRAPH, g: value };
}

export function valueInfo(name: string, elemType: DTypeCode, shape: Dim[] | null): IValueInfoProto {
  const tensorType: onnxProto.onnx.TypeProto.ITensor = { elemType };
  if (shape) {
    tensorType.shape = { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  }
  return { name, type: { tensorType } };
}

function bytesOf(data: Float32Array | Int32Array | BigInt64Array | Uint8Array | Int8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Collects nodes, initializers and I/O of one (sub)graph. Names are made unique per builder tree with a shared
 * counter, so subgraphs can reference outer-scope values by name without collisions.
 */
export class GraphBuilder {
  readonly nodes: INodeProto[] = [];
  readonly initializers: ITensorProto[] = [];
  readonly inputs: IValueInfoProto[] = [];
  readonly outputs: IValueInfoProto[] = [];
  private readonly counter: { n: number };
  private readonly constCache: Map<string, string>;

  constructor(
    readonly name: string,
    parent?: GraphBuilder,
  ) {
    this.counter = parent ? parent.counter : { n: 0 };
    // Constants are per-graph: a subgraph may read outer constants, but keeping its own is simpler to reason about.
    this.constCache = new Map();
  }

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter.n++}`;
  }

  input(name: string, elemType: DTypeCode, shape: Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  /** Declares a graph output; renames `value` through an Identity when the names differ. */
  output(value: string, name: string, elemType: DTypeCode, shape: Dim[] | null): string {
    if (value !== name)
      this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: this.fresh('out') });
    this.outputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  /** Adds a node and returns its output names (`nOut` of them). */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1, domain = ''): string[] {
    const outputs = Array.from({ length: nOut }, () => this.fresh(opType.toLowerCase()));
    this.nodes.push({
      opType,
      domain: domain || undefined,
      input: inputs,
      output: outputs,
      name: this.fresh(`n_${opType}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** Single-output op. */
  op1(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.op(opType, inputs, attrs, 1, domain)[0];
  }

  tensor(
    name: string,
    elemType: DTypeCode,
    dims: number[],
    data: Float32Array | Int32Array | BigInt64Array | Uint8Array | Int8Array,
  ): string {
    this.initializers.push({ name, dataType: elemType, dims, rawData: bytesOf(data).slice() });
    return name;
  }

  /** A small int64 constant, deduplicated per graph. */
  constI64(values: number[] | number): string {
    return this.constant('i64', DType.int64, values, (arr) => BigInt64Array.from(arr.map((v) => BigInt(v))));
  }

  /** A small float constant, deduplicated per graph. */
  constF32(values: number[] | number): string {
    return this.constant('f32', DType.float, values, (arr) => Float32Array.from(arr));
  }

  private constant(
    kind: string,
    elemType: DTypeCode,
    values: number[] | number,
    encode: (values: number[]) => BigInt64Array | Float32Array,
  ): string {
    const scalar = !Array.isArray(values);
    const arr = scalar ? [values] : values;
    const key = `${kind}:${scalar ? 's' : 'v'}:${arr.join(',')}`;
    let name = this.constCache.get(key);
    if (!name) {
      name = this.fresh(`c_${kind}`);
      this.tensor(name, elemType, scalar ? [] : [arr.length], encode(arr));
      this.constCache.set(key, name);
    }
    return name;
  }

  build(): IGraphProto {
    return {
      name: this.name,
      node: this.nodes,
      initializer: this.initializers,
      input: this.inputs,
      output: this.outputs,
    };
  }
}

export interface OpsetImport {
  domain: string;
  version: number;
}

/** Encodes a model; IR version 8 is understood by every onnxruntime since 1.11. */
export function encodeModel(graph: IGraphProto, opsets: OpsetImport[], docString: string): Uint8Array {
  const model: onnxProto.onnx.IModelProto = {
    irVersion: 8,
    producerName: 'deciserve',
    producerVersion: '0.1.0',
    docString,
    opsetImport: opsets.map((o) => ({ domain: o.domain, version: o.version })),
    graph,
  };
  return onnx.ModelProto.encode(model).finish();
}
