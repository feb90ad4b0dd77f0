/** Regenerates the table in docs/errors.md from src/errors.ts (run: npm run docs:errors). */
import { readFileSync, writeFileSync } from 'node:fs';
import { ErrorCodes } from '../src/errors.js';

const path = new URL('../docs/errors.md', import.meta.url);
const doc = readFileSync(path, 'utf8');
const head = doc.slice(0, doc.indexOf('| code |'));
const rows = Object.values(ErrorCodes).map((e) => `| \`${e.code}\` | ${e.closeCode ?? ''} | ${e.httpStatus ?? ''} | ${e.retryable ? 'yes' : ''} | ${e.summary} |`);
writeFileSync(path, `${head}| code | close code | HTTP | retryable | meaning |\n|---|---|---|---|---|\n${rows.join('\n')}\n`);
