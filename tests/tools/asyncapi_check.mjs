// Checks AsyncAPI documents with the official parser (@asyncapi/parser): prints every diagnostic,
// exits 1 when any is an error (severity 0). Usage: node asyncapi_check.mjs FILE...
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));
  for (const d of diagnostics) {
    console.log(`${file}: ${['error', 'warning', 'info', 'hint'][d.severity] ?? d.severity}: ${d.code}: ${d.message} at ${d.path.join('.')}`);
    if (d.severity === 0) failed = true;
  }
  if (!document) failed = true;
  else console.log(`${file}: ${document.channels().length} channel(s), ${document.operations().length} operation(s), ${document.servers().length} server(s)`);
}
process.exit(failed ? 1 : 0);
