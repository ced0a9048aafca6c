// Validate GLB files with the Khronos glTF validator; prints one JSON line per file:
// {"file": ..., "errors": n, "warnings": n, "messages": [...first errors and warnings...]}
// usage: node tools/validate_gltf.mjs FILE.glb [...]
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

for (const file of process.argv.slice(2)) {
  const data = new Uint8Array(await readFile(file));
  const report = await validator.validateBytes(data, { uri: file, maxIssues: 200 });
  const issues = report.issues;
  const messages = issues.messages
    .filter((m) => m.severity <= 1)
    .slice(0, 10)
    .map((m) => `${m.severity === 0 ? "error" : "warning"} ${m.code}: ${m.message} (${m.pointer ?? ""})`);
  console.log(JSON.stringify({ file, errors: issues.numErrors, warnings: issues.numWarnings, infos: issues.numInfos, messages }));
}
