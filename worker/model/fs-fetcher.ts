// A ModelFetcher over a folder, so Node serves the model through the same code path as the Worker's assets binding.
import { readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import type { ModelFetcher } from './edge-model.ts';

export function folderFetcher(dir: string): ModelFetcher {
  return {
    async fetch(input: string): Promise<Response> {
      const name = normalize(decodeURIComponent(new URL(input).pathname)).replace(/^\/+/, '');
      if (name.startsWith('..')) return new Response('not found', { status: 404 });
      try {
        return new Response(new Uint8Array(await readFile(join(dir, name))));
      } catch {
        return new Response('not found', { status: 404 });
      }
    },
  };
}
