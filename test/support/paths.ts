/**
 * Where things are, whether this file runs from test/support (tests, with
 * tsx) or from dist/test/support (the compiled benches).
 */
import { join, sep } from 'node:path';

const compiled = import.meta.dirname.endsWith(`${sep}dist${sep}test${sep}support`);

/** The repository root. */
export const ROOT = join(import.meta.dirname, compiled ? '../../..' : '../..');

/** The compiled Sandbar entry point (`npm run build` makes it). */
export const MAIN = join(ROOT, 'dist/src/main.js');
