// Validates an AsyncAPI document with the AsyncAPI parser (the one its tools use).
//
//   node validate.mjs [FILE]      (no FILE: the document is read from standard input)
//
// Prints one JSON object: the parser's diagnostics (errors and warnings) and, when the
// document parsed, the names of its messages, operations and channels. Exits 1 on any
// error diagnostic (or when nothing could be parsed), else 0.
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const source = readFileSync(process.argv[2] ?? 0, "utf8");
const { document, diagnostics } = await new Parser().parse(source);

const describe = (d) => ({ code: d.code, message: d.message, path: d.path.join("/") });
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
const report = {
  version: document?.version() ?? null,
  errors: errors.map(describe),
  warnings: warnings.map(describe),
  messages: document ? document.allMessages().all().map((m) => m.name() ?? m.id()) : [],
  operations: document ? document.allOperations().all().map((o) => `${o.action()} ${o.id()}`) : [],
  channels: document ? document.allChannels().all().map((c) => c.address()) : [],
};
console.log(JSON.stringify(report, null, 2));
process.exit(errors.length > 0 || !document ? 1 : 0);
