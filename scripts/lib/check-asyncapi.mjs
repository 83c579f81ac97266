// Parses an AsyncAPI document with the AsyncAPI Initiative's own parser (its schema and its
// spectral rules): prints every diagnostic and exits 1 on any error. Run by scripts/check-asyncapi.
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';
const [file] = process.argv.slice(2);
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));
const severity = ['error', 'warning', 'information', 'hint'];
for (const d of diagnostics) {
  console.log(`${severity[d.severity]} ${d.code} at ${d.path.join('/')}: ${d.message}`);
}
const errors = diagnostics.filter(d => d.severity === DiagnosticSeverity.Error);
if (!document || errors.length) { console.error(`${file}: ${errors.length} errors`); process.exit(1); }
console.log(`${file}: valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ${document.operations().length} operations, ${document.components().messages().length} messages`);
