// gamesocket.d.ts against the module: every runtime export is declared, and a strict
// TypeScript compile of a typical use (test/types/usage.ts) passes.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import * as gamesocket from "../gamesocket.js";

const root = fileURLToPath(new URL("..", import.meta.url));

test("every export of gamesocket.js is declared in gamesocket.d.ts, and nothing else at run time", async () => {
  const declarations = await readFile(new URL("../gamesocket.d.ts", import.meta.url), "utf8");
  const declared = new Set(
    [...declarations.matchAll(/^export declare (?:function|class|const) (\w+)/gm)].map((match) => match[1]),
  );
  assert.deepEqual([...declared].sort(), Object.keys(gamesocket).sort());
});

test("package.json points at the module and its declarations", async () => {
  const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.name, "gamesocket-client");
  assert.equal(pkg.type, "module");
  assert.equal(pkg.types, "./gamesocket.d.ts");
  assert.deepEqual(pkg.exports["."], { types: "./gamesocket.d.ts", default: "./gamesocket.js" });
  const self = await import("gamesocket-client");
  assert.equal(self.connect, gamesocket.connect, "the package resolves to this module");
});

test("a strict TypeScript compile of a typical use passes", { timeout: 120000 }, async () => {
  const tsc = fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url));
  try {
    await promisify(execFile)(process.execPath, [tsc, "-p", "test/types/tsconfig.json"], { cwd: root });
  } catch (err) {
    assert.fail(`tsc found errors:\n${err.stdout}${err.stderr}`);
  }
});
