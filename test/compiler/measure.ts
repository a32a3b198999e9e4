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
const changed = corpus.map((s, i) => (i === 3 ? { ...s, text: `${s.text}\nstruct Extra { a: int }\n` } : s));
const [, warmMs] = time(() => checkSources(changed, { cache }));
const [, warm2Ms] = time(() => checkSources(corpus, { cache }));
const [, uncachedMs] = time(() => checkSources(corpus));
console.log(
  `${corpus.length} files, ${(bytes / 1024).toFixed(0)} KiB, ${cold.diagnostics.length} diagnostics, model: ${cold.model !== undefined}`,
);
console.log(
  `CPU time: cold check ${coldMs.toFixed(0)} ms; uncached (JIT warm) ${uncachedMs.toFixed(0)} ms; re-check after one-file change ${warmMs.toFixed(0)} ms, ${warm2Ms.toFixed(0)} ms`,
);
