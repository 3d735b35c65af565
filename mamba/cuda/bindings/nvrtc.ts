// Thin koffi bindings to NVRTC: compile CUDA C to CUBIN (sm_XY) or PTX (compute_XY), with the compile log on failure.
import { bindFirst, loadLibrary, type NativeFunction } from './library.ts';
import { checker, CudaError } from './errors.ts';

export interface NvrtcSource {
  /** The main translation unit. */
  source: string;
  name: string;
  /** Files the source may #include, by include name. */
  headers?: Record<string, string>;
}

export interface NvrtcOutput {
  /** 'cubin' for -arch=sm_XY, 'ptx' for -arch=compute_XY. */
  kind: 'cubin' | 'ptx';
  /** The image for cuModuleLoadData (PTX with its terminating NUL). */
  image: Uint8Array;
  log: string;
}

function bind() {
  const { handle, path } = loadLibrary('nvrtc');
  const f = (proto: string): NativeFunction => bindFirst(handle, [proto]);
  return {
    path,
    nvrtcGetErrorString: f('const char *nvrtcGetErrorString(int result)'),
    nvrtcVersion: f('int nvrtcVersion(_Out_ int *major, _Out_ int *minor)'),
    nvrtcCreateProgram: f(
      'int nvrtcCreateProgram(_Out_ void **prog, const char *src, const char *name, int numHeaders, const char **headers, const char **includeNames)',
    ),
    nvrtcDestroyProgram: f('int nvrtcDestroyProgram(_Inout_ void **prog)'),
    nvrtcCompileProgram: f('int nvrtcCompileProgram(void *prog, int numOptions, const char **options)'),
    nvrtcGetProgramLogSize: f('int nvrtcGetProgramLogSize(void *prog, _Out_ size_t *size)'),
    nvrtcGetProgramLog: f('int nvrtcGetProgramLog(void *prog, _Out_ uint8_t *log)'),
    nvrtcGetPTXSize: f('int nvrtcGetPTXSize(void *prog, _Out_ size_t *size)'),
    nvrtcGetPTX: f('int nvrtcGetPTX(void *prog, _Out_ uint8_t *ptx)'),
    nvrtcGetCUBINSize: f('int nvrtcGetCUBINSize(void *prog, _Out_ size_t *size)'),
    nvrtcGetCUBIN: f('int nvrtcGetCUBIN(void *prog, _Out_ uint8_t *cubin)'),
  };
}

export class Nvrtc {
  private readonly check: (call: string, code: number) => void;

  private constructor(private readonly raw: ReturnType<typeof bind>) {
    this.check = checker('nvrtc', (code) => ({
      name: String(raw.nvrtcGetErrorString(code) ?? `NVRTC error ${code}`),
      description: '',
    }));
  }

  private static instance: Nvrtc | null = null;

  static load(): Nvrtc {
    Nvrtc.instance ??= new Nvrtc(bind());
    return Nvrtc.instance;
  }

  get libraryPath(): string {
    return this.raw.path;
  }

  version(): string {
    const major = [0];
    const minor = [0];
    this.check('nvrtcVersion', this.raw.nvrtcVersion(major, minor));
    return `${major[0]}.${minor[0]}`;
  }

  /** Compiles; options decide the target (-arch=sm_90 gives a CUBIN, -arch=compute_90 PTX). Failures carry the log. */
  compile(program: NvrtcSource, options: string[]): NvrtcOutput {
    const names = Object.keys(program.headers ?? {});
    const bodies = names.map((n) => program.headers![n]!);
    const prog = [null as bigint | null];
    this.check(
      'nvrtcCreateProgram',
      this.raw.nvrtcCreateProgram(prog, program.source, program.name, names.length, bodies, names),
    );
    try {
      const code = this.raw.nvrtcCompileProgram(prog[0], options.length, options);
      const log = this.log(prog[0]!);
      if (code !== 0) {
        try {
          this.check(`nvrtcCompileProgram(${program.name})`, code);
        } catch (err) {
          const e = err as CudaError;
          throw new CudaError('nvrtc', e.call, e.code, e.codeName, `\n${log.trim()}`);
        }
      }
      const cubin = options.some((o) => /^(-arch=|--gpu-architecture=)sm_/.test(o));
      const size = [0];
      if (cubin) {
        this.check('nvrtcGetCUBINSize', this.raw.nvrtcGetCUBINSize(prog[0], size));
        const image = new Uint8Array(Number(size[0]));
        this.check('nvrtcGetCUBIN', this.raw.nvrtcGetCUBIN(prog[0], image));
        return { kind: 'cubin', image, log };
      }
      this.check('nvrtcGetPTXSize', this.raw.nvrtcGetPTXSize(prog[0], size));
      const image = new Uint8Array(Number(size[0])); // includes the NUL that cuModuleLoadData needs
      this.check('nvrtcGetPTX', this.raw.nvrtcGetPTX(prog[0], image));
      return { kind: 'ptx', image, log };
    } finally {
      this.raw.nvrtcDestroyProgram(prog);
    }
  }

  private log(prog: bigint): string {
    const size = [0];
    this.check('nvrtcGetProgramLogSize', this.raw.nvrtcGetProgramLogSize(prog, size));
    const n = Number(size[0]);
    if (n <= 1) return '';
    const buf = new Uint8Array(n);
    this.check('nvrtcGetProgramLog', this.raw.nvrtcGetProgramLog(prog, buf));
    return new TextDecoder().decode(buf.subarray(0, n - 1));
  }
}
