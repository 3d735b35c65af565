// JSON logs on stdout (pino); one line per event, ready for any log shipper.
import { pino, type Logger } from 'pino';

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { service: 'deciserve-runner', pid: process.pid, ...bindings } });
}
