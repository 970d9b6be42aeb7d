#!/usr/bin/env node
// The agentq command. In a checkout it runs the TypeScript sources directly
// (Node >= 22.18 strips types); an installed package runs the compiled dist/.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
const built = new URL('../dist/cli/main.js', import.meta.url);
await import(existsSync(source) ? source.href : built.href);
