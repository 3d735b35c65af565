// Turning flag strings into checked numbers and lists; every failure is a one-line UsageError naming the flag.
import { UsageError, type ParsedValues } from './registry.ts';

function raw(values: ParsedValues, name: string): string | undefined {
  const v = values[name];
  if (v === undefined || typeof v === 'string') return v;
  throw new UsageError(`--${name} expects a value`);
}

function parseNumber(name: string, text: string, integer: boolean): number {
  const n = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} expects ${integer ? 'an integer' : 'a number'}, got '${text}'`);
  }
  return n;
}

function checkRange(name: string, n: number, min?: number, max?: number): number {
  if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
    const range = max === undefined ? `≥ ${min}` : min === undefined ? `≤ ${max}` : `in [${min}, ${max}]`;
    throw new UsageError(`--${name} must be ${range}, got ${n}`);
  }
  return n;
}

type Range = { min?: number; max?: number };

function numberValue(values: ParsedValues, name: string, integer: boolean, opts: Range): number | undefined {
  const text = raw(values, name);
  return text === undefined ? undefined : checkRange(name, parseNumber(name, text, integer), opts.min, opts.max);
}

export const intValue = (values: ParsedValues, name: string, opts: Range = {}) => numberValue(values, name, true, opts);

export const floatValue = (values: ParsedValues, name: string, opts: Range = {}) =>
  numberValue(values, name, false, opts);

export function listValue(
  values: ParsedValues,
  name: string,
  opts: { integer?: boolean; min?: number; max?: number } = {},
): number[] | undefined {
  const text = raw(values, name);
  if (text === undefined) return undefined;
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw new UsageError(`--${name} expects a comma-separated list, got '${text}'`);
  return items.map((item) => checkRange(name, parseNumber(name, item, opts.integer ?? false), opts.min, opts.max));
}

export function stringValue(values: ParsedValues, name: string): string | undefined {
  return raw(values, name);
}

export function stringList(values: ParsedValues, name: string): string[] {
  const v = values[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [String(v)];
}
