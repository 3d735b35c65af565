// Progress for long runs on stderr: a live bar on a terminal, a line every few seconds otherwise (logs, CI, pipes).
import cliProgress from 'cli-progress';

export interface Progress {
  tick(info?: string): void;
  stop(): void;
}

export function createProgress(total: number, label: string, intervalMs = 5000): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} | eta {eta_formatted} | {info}`,
        stream: process.stderr,
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { info: '' });
    return { tick: (info = '') => bar.increment(1, { info }), stop: () => bar.stop() };
  }
  let done = 0;
  let lastPrint = Date.now();
  const started = Date.now();
  const print = (info: string) => {
    const elapsed = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(`${label}: ${done}/${total} (${elapsed}s)${info ? ` ${info}` : ''}\n`);
  };
  return {
    tick(info = '') {
      done++;
      if (Date.now() - lastPrint >= intervalMs || done === total) {
        lastPrint = Date.now();
        print(info);
      }
    },
    stop() {},
  };
}
