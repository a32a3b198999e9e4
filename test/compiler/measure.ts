/**
 * Speed of the front end on the synthetic corpus (not a test; run with
 * `npx tsx test/compiler/measure.ts`): a cold check, a warm re-check with the parse cache
 * after a one-file change, and the corpus size.
 */
import { checkSources, ParseCache } from "../../src/compiler/index.js";
import { syntheticCorpus } from "./corpus.js";

const corpus = syntheticCorpus();
const bytes = corpus.reduce((n, s) => n + s.text.length, 0);
/** CPU time (user + system) in ms: steadier than wall time on a shared machine. */
const time = <T>(f: () => T): [T, number] => {
  const t0 = process.cpuUsage();
  const r = f();
  const d = process.cpuUsage(t0);
  return [r, (d.user + d.system) / 1000];
};
const cache = new ParseCache();
const [cold, coldMs] = time(() => checkSources(corpus, { cache }));
// A body edit (a default changes; no declaration, field or member is added or renamed) ...
const edited = corpus.map((s, i) => (i === 3 ? { ...s, text: s.text.replace("count: int = 0", "count: int = 1") } : s));
const [, warmMs] = time(() => checkSources(edited, { cache }));
const [, warm2Ms] = time(() => checkSources(corpus, { cache }));
// ... and an interface edit (a new declaration), after which every file is checked again.
const added = corpus.map((s, i) => (i === 3 ? { ...s, text: `${s.text}\nstruct Extra { a: int }\n` } : s));
const [, addMs] = time(() => checkSources(added, { cache }));
const [, uncachedMs] = time(() => checkSources(corpus));
console.log(
  `${corpus.length} files, ${(bytes / 1024).toFixed(0)} KiB, ${cold.diagnostics.length} diagnostics, model: ${cold.model !== undefined}`,
);
console.log(`CPU time: cold check ${coldMs.toFixed(0)} ms; uncached (JIT warm) ${uncachedMs.toFixed(0)} ms`);
console.log(
  `re-check after a one-file body edit: ${warmMs.toFixed(0)} ms, ${warm2Ms.toFixed(0)} ms; after a new declaration: ${addMs.toFixed(0)} ms`,
);
