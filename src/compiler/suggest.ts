/**
 * "Did you mean" hints for unknown names: the closest candidate by edit distance (case
 * differences count as half), offered only when it is close enough to be a likely typo.
 */

/** The closest candidate to `name`, or undefined when none is plausibly what was meant. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  // Short names are too easy to match by accident: at two characters only a case difference counts.
  const limit = name.length <= 2 ? 0.5 : name.length <= 4 ? 1 : name.length <= 6 ? 2 : 3;
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    if (c === name || Math.abs(c.length - name.length) > limit) continue;
    const score = c.toLowerCase() === name.toLowerCase() ? 0.5 : distance(name, c);
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

/** Damerau-Levenshtein distance (adjacent transpositions count as one edit), case-insensitive. */
function distance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const rows: number[][] = Array.from({ length: s.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= t.length; j++) (rows[0] as number[])[j] = j;
  for (let i = 1; i <= s.length; i++) {
    const row = rows[i] as number[];
    const prev = rows[i - 1] as number[];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1])
        d = Math.min(d, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = d;
    }
  }
  return (rows[s.length] as number[])[t.length] as number;
}
