// Every CUDA, NVRTC and cuBLAS return code is checked; a failure names the call and decodes the code.

export type CudaApi = 'cuda' | 'nvrtc' | 'cublas';

export class CudaError extends Error {
  override name = 'CudaError';
  constructor(
    readonly api: CudaApi,
    readonly call: string,
    readonly code: number,
    readonly codeName: string,
    description: string,
  ) {
    super(`${call} failed: ${codeName} (${code})${description ? `: ${description}` : ''}`);
  }

  /** CUDA_ERROR_OUT_OF_MEMORY, CUBLAS_STATUS_ALLOC_FAILED */
  get outOfMemory(): boolean {
    return (this.api === 'cuda' && this.code === 2) || (this.api === 'cublas' && this.code === 3);
  }
}

/** Decodes a code to (name, description); never throws (a failed decode is itself reported in the text). */
export type CodeDecoder = (code: number) => { name: string; description: string };

export function checker(api: CudaApi, decode: CodeDecoder): Check {
  return (call, code) => {
    if (code === 0) return;
    let decoded: { name: string; description: string };
    try {
      decoded = decode(code);
    } catch (err) {
      decoded = { name: `${api} error ${code}`, description: `(decoding failed: ${(err as Error).message})` };
    }
    throw new CudaError(api, call, code, decoded.name, decoded.description);
  };
}

export type Check = (call: string, code: number) => void;

/** Calls a C function that returns its result through one out-parameter (koffi's `_Out_` one-element array),
 * checks the code and returns the result; `empty` is the slot's initial value (0 or a null handle). */
export function readOut<T>(check: Check, call: string, empty: T, fn: (out: T[]) => number): T {
  const out = [empty];
  check(call, fn(out));
  return out[0]!;
}
