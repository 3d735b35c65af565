#!/usr/bin/env node
// The `deciserve` CLI: runs cli/main.ts directly through tsx's ESM loader (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
