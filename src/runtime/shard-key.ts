/**
 * The key → shard hash of sharding (`docs/sharding.md`), alone: FNV-1a 32 over the canonical
 * encoding of the key tuple (each part as `{utf8 byte length}:{utf8 bytes}`), modulo the shard
 * count. No imports, so `fan/browser` computes the same shard as the runtime
 * (`client.states.x.watch({ key })` in a page); `call/shards.ts` builds ownership on it.
 */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a 32 of `s`'s UTF-8 bytes, continuing from `h`. */
export function fnv1aUtf8(s: string, h = FNV_OFFSET): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c < 0xe000) c = 0xfffd; // a lone surrogate encodes as U+FFFD, as TextEncoder does
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV_PRIME);
    } else if (c < 0x10000) {
      h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    } else {
      h = Math.imul(h ^ (0xf0 | (c >> 18)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    }
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  return h >>> 0;
}

/** Number of UTF-8 bytes of `s` (lone surrogates count as U+FFFD, 3 bytes). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** The canonical text of one key part: strings as they are, numbers and bigints in decimal, JSON otherwise. */
export function keyPart(v: unknown): string {
  switch (typeof v) {
    case "string":
      return v;
    case "number":
    case "bigint":
    case "boolean":
      return String(v);
    default:
      return v instanceof Date ? v.toISOString() : JSON.stringify(v);
  }
}

/** FNV-1a 32 of the canonical encoding of a key tuple: `{byte length}:{bytes}` per part. */
export function keyHash(parts: readonly string[]): number {
  let h = FNV_OFFSET;
  for (const p of parts) h = fnv1aUtf8(p, fnv1aUtf8(`${utf8Length(p)}:`, h));
  return h;
}

/** The shard of a key tuple among `n`. */
export function shardOfKey(parts: readonly string[], n: number): number {
  return keyHash(parts) % n;
}

/** The shard of a key given as `watch({ key })` takes it: a tuple as an array, else one value. */
export function shardOfKeyValue(key: unknown, n: number): number {
  const parts = Array.isArray(key) ? key : [key];
  return shardOfKey(parts.map(keyPart), n);
}
