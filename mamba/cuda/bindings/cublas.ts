// Thin koffi bindings to cuBLAS: handle, stream, workspace, math mode and the two GEMMs the engine uses.
// Every PyTorch-layout linear y[rows, out] = x[rows, in] · W[out, in]ᵀ maps onto column-major cuBLAS as
// C'[out, rows] = W'ᵀ · x' with W' = W seen column-major ([in, out], ld = in): transa = T, transb = N.
import { bindFirst, loadLibrary, type NativeFunction } from './library.ts';
import { type Check, checker, readOut } from './errors.ts';
import type { CuHandle, DevicePtr } from './driver.ts';

/** cudaDataType_t */
export const DataType = { f32: 0, f16: 2, bf16: 14 } as const;
export type GemmType = keyof typeof DataType;

/** cublasComputeType_t */
export const ComputeType = { f32: 68, f32Pedantic: 69, f32FastTf32: 77 } as const;

/** cublasMath_t */
export const MathMode = { default: 0, pedantic: 2, tf32: 3, disallowReducedPrecisionReduction: 16 } as const;

const OP_N = 0;
const OP_T = 1;
const GEMM_DEFAULT = -1;

export interface GemmOperand {
  ptr: DevicePtr;
  type: GemmType;
  /** Leading dimension in elements (row stride of the row-major matrix). */
  ld: number;
}

/** One y = x·Wᵀ: x [rows, k] (row stride x.ld), W [n, k] (row stride w.ld), y [rows, n] (row stride y.ld). */
export interface LinearGemm {
  rows: number;
  k: number;
  n: number;
  x: GemmOperand;
  w: GemmOperand;
  y: GemmOperand;
  /** y = x·Wᵀ + beta·y. Default 0. */
  beta?: number;
}

function bind() {
  const { handle, path } = loadLibrary('cublas');
  const f = (protos: string[]): NativeFunction => bindFirst(handle, protos);
  return {
    path,
    cublasCreate: f(['int cublasCreate_v2(_Out_ void **handle)']),
    cublasDestroy: f(['int cublasDestroy_v2(void *handle)']),
    cublasGetVersion: f(['int cublasGetVersion_v2(void *handle, _Out_ int *version)']),
    cublasSetStream: f(['int cublasSetStream_v2(void *handle, void *stream)']),
    cublasSetWorkspace: f(['int cublasSetWorkspace_v2(void *handle, uint64_t workspace, size_t bytes)']),
    cublasSetMathMode: f(['int cublasSetMathMode(void *handle, int mode)']),
    cublasGetStatusName: f(['const char *cublasGetStatusName(int status)']),
    cublasGetStatusString: f(['const char *cublasGetStatusString(int status)']),
    cublasGemmEx: f([
      'int cublasGemmEx(void *handle, int transa, int transb, int m, int n, int k, const float *alpha, uint64_t A, int Atype, int lda, uint64_t B, int Btype, int ldb, const float *beta, uint64_t C, int Ctype, int ldc, int computeType, int algo)',
    ]),
  };
}

export class Cublas {
  private readonly check: Check;
  private readonly alpha = new Float32Array([1]);
  private readonly betaBuf = new Float32Array([0]);

  private constructor(
    private readonly raw: ReturnType<typeof bind>,
    readonly handle: CuHandle,
  ) {
    this.check = checker('cublas', (code) => ({
      name: String(raw.cublasGetStatusName(code) ?? `CUBLAS status ${code}`),
      description: String(raw.cublasGetStatusString(code) ?? ''),
    }));
  }

  /** A handle bound to `stream`, using `workspace` (so cuBLAS allocates nothing itself and can be graph-captured). */
  static create(stream: CuHandle, workspace: { ptr: DevicePtr; bytes: number }): Cublas {
    const raw = bind();
    const h = [null as bigint | null];
    const code = raw.cublasCreate(h);
    const cublas = new Cublas(raw, h[0]!);
    cublas.check('cublasCreate', code);
    cublas.check('cublasSetStream', raw.cublasSetStream(cublas.handle, stream));
    cublas.check('cublasSetWorkspace', raw.cublasSetWorkspace(cublas.handle, workspace.ptr, workspace.bytes));
    return cublas;
  }

  get libraryPath(): string {
    return this.raw.path;
  }

  version(): number {
    return readOut(this.check, 'cublasGetVersion', 0, (v) => this.raw.cublasGetVersion(this.handle, v));
  }

  setMathMode(mode: number): void {
    this.check('cublasSetMathMode', this.raw.cublasSetMathMode(this.handle, mode));
  }

  /** y = x·Wᵀ (+ beta·y) with f32 accumulation (computeType f32: no TF32 unless the math mode allows it). */
  linear(g: LinearGemm, computeType: number = ComputeType.f32): void {
    if (g.rows === 0) return;
    this.betaBuf[0] = g.beta ?? 0;
    const code = this.raw.cublasGemmEx(
      this.handle,
      OP_T,
      OP_N,
      g.n,
      g.rows,
      g.k,
      this.alpha,
      g.w.ptr,
      DataType[g.w.type],
      g.w.ld,
      g.x.ptr,
      DataType[g.x.type],
      g.x.ld,
      this.betaBuf,
      g.y.ptr,
      DataType[g.y.type],
      g.y.ld,
      computeType,
      GEMM_DEFAULT,
    );
    this.check(`cublasGemmEx(${g.rows}x${g.k} · ${g.n}x${g.k}ᵀ, ${g.x.type}→${g.y.type})`, code);
  }

  destroy(): void {
    this.check('cublasDestroy', this.raw.cublasDestroy(this.handle));
  }
}
