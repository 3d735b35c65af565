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

export function checker(api: CudaApi, decode: CodeDecoder): (call: string, code: number) => void {
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
