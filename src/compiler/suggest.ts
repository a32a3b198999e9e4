/**
 * "Did you mean" hints for unknown names: the closest candidate by edit distance (case
 * differences count as half), offered only when it is close enough to be a likely typo.
 */
import { editDistance } from "../util/edit-distance.js";

/** The closest candidate to `name`, or undefined when none is plausibly what was meant. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  // Short names are too easy to match by accident: at two characters only a case difference counts.
  const limit = name.length <= 2 ? 0.5 : name.length <= 4 ? 1 : name.length <= 6 ? 2 : 3;
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    if (c === name || Math.abs(c.length - name.length) > limit) continue;
    const score = c.toLowerCase() === name.toLowerCase() ? 0.5 : editDistance(name, c);
    if (score <= limit && (score < bestScore || (score === bestScore && best !== undefined && c < best))) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

/** The message suffix for a hint: `; did you mean \`X\`?`, or nothing. */
export function hintText(suggestion: string | undefined, prefix = ""): string {
  return suggestion === undefined ? "" : `; did you mean \`${prefix}${suggestion}\`?`;
}
