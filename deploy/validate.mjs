// Validates rendered Kubernetes manifests offline; run by deploy/check.
//
//   node deploy/validate.mjs TOOLS_DIR MANIFEST.yaml...
//
// TOOLS_DIR holds node_modules with the pinned packages deploy/check
// installs (yaml, kubernetes-models, typescript). Every object of every
// manifest is checked twice:
//   1. against the Kubernetes API schema of its apiVersion and kind
//      (kubernetes-models' validate(): types, required fields, quantities,
//      int-or-string ports);
//   2. for unknown fields, which those schemas allow: a misspelt field
//      would pass them and then be refused by `kubectl apply` (strict field
//      validation) or silently dropped. Each object becomes a TypeScript
//      constant typed with its kubernetes-models interface, and tsc's
//      excess-property checks name every field the API does not have.
// Prints one line per problem; exits 0 when every object is valid, 1 if not.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, join } from "node:path";
import { pathToFileURL } from "node:url";

const [tools, ...manifests] = process.argv.slice(2);
if (!tools || manifests.length === 0) {
  console.error("usage: node validate.mjs TOOLS_DIR MANIFEST.yaml...");
  process.exit(2);
}
const modules = join(tools, "node_modules");
const YAML = createRequire(join(tools, "resolve-from-here.js"))("yaml");

const problems = [];
// The objects for the tsc pass: {label, apiVersion, kind, object}.
const typed = [];

for (const manifest of manifests) {
  const docs = YAML.parseAllDocuments(readFileSync(manifest, "utf8"));
  let count = 0;
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      problems.push(`${manifest}: YAML: ${doc.errors[0].message}`);
      continue;
    }
    const object = doc.toJS();
    if (object === null) continue;  // an empty document
    count++;
    const { apiVersion, kind } = object;
    const label = `${basename(manifest)}: ${kind}/${object.metadata?.name}`;
    // kubernetes-models lays its models out as <apiVersion>/<Kind>.js.
    const model = join(modules, "kubernetes-models", `${apiVersion}`, `${kind}.js`);
    if (!apiVersion || !kind || !existsSync(model)) {
      problems.push(`${label}: no schema for apiVersion ${apiVersion}, kind ${kind}`);
      continue;
    }
    const Model = (await import(pathToFileURL(model)))[kind];
    try {
      new Model(object).validate();
    } catch (error) {
      problems.push(`${label}: ${error.message}`);
    }
    typed.push({ label, apiVersion, kind, object });
  }
  console.log(`${manifest}: ${count} objects`);
}

// The tsc pass. The sources live under TOOLS_DIR so that their imports
// resolve to its node_modules.
const work = mkdtempSync(join(tools, "typecheck-"));
try {
  const sources = typed.map(({ apiVersion, kind, object }, i) => {
    const file = join(work, `object${i}.mts`);
    writeFileSync(file, [
      `import type { I${kind} } from "kubernetes-models/${apiVersion}/${kind}";`,
      `export const object: I${kind} = ${JSON.stringify(object, null, 2)};`,
      "",
    ].join("\n"));
    return file;
  });
  const tsc = spawnSync(process.execPath, [
    join(modules, "typescript/bin/tsc"), "--noEmit", "--strict", "--skipLibCheck",
    "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
    ...sources,
  ], { encoding: "utf8" });
  // tsc reports "path/objectN.mts(LINE,COL): error TSxxxx: message".
  for (const line of tsc.stdout.split("\n")) {
    const match = /object(\d+)\.mts\((\d+),\d+\): (.*)/.exec(line);
    if (match) {
      const source = readFileSync(sources[match[1]], "utf8").split("\n");
      const text = source[match[2] - 1].trim();
      problems.push(`${typed[match[1]].label}: ${match[3]} (at ${text})`);
    } else if (line.trim() !== "") {
      problems.push(`tsc: ${line}`);
    }
  }
  if (tsc.status !== 0 && problems.length === 0) {
    problems.push(`tsc failed (status ${tsc.status}): ${tsc.stderr}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

for (const problem of problems) console.log(`INVALID ${problem}`);
if (problems.length > 0) {
  console.log(`${problems.length} problem(s) in ${typed.length} objects`);
  process.exit(1);
}
console.log(`all ${typed.length} objects valid (API schema and known fields)`);
