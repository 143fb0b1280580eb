// Prints the YAML documents of a file as one JSON array, so .NET tests can check deployment files with a real
// YAML 1.2 parser (npm "yaml") instead of a hand-rolled one. Parse errors exit non-zero with the message.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const documents = parseAllDocuments(readFileSync(process.argv[2], "utf8"));
for (const document of documents) {
  if (document.errors.length > 0) {
    console.error(document.errors.map((e) => e.message).join("\n"));
    process.exit(1);
  }
}
process.stdout.write(JSON.stringify(documents.map((d) => d.toJS({ maxAliasCount: 100 }))));
