/**
 * The batch frame of broker rpc (nats, amqp): several calls (or replies) in one broker message,
 * so the calls a client makes in one tick to one subject or queue, and the replies a server
 * finishes in one tick for one client, cost the broker and both client libraries one message
 * instead of one each.
 *
 * Frame: a mark byte, then items separated by `\n`, each item `{seq}\n{body}` (`seq` a decimal
 * number the client chose; JSON text never holds a raw newline). A call frame's items are call
 * envelopes (JSON). Its mark says how its replies may come back: `#` (an older client) asks for
 * reply envelopes, `%` also takes compact replies (replies.ts: `=` and the payload's JSON, `!`
 * and the error's). A reply frame starts with `#`. An envelope alone (the first byte `{`) is
 * still a call of its own, answered on the message's reply address.
 *
 * A reply frame's item of seq `0` (no call has it: clients number calls from 1) is a taken
 * notice (nats): `@` and the JSON array `[instanceId, seq, …]`, the calls of this client that
 * instance is running. A client from before notices finds no call 0 and skips it.
 */

/** The first byte of a batch frame (`#`: no envelope's JSON starts with it). */
export const BATCH_MARK = 0x23;
/** The first byte of a call frame whose client reads compact replies (`%`). */
export const COMPACT_MARK = 0x25;

const NEWLINE = 0x0a;

/** Whether `data` is a batch frame. */
export function isBatch(data: Uint8Array): boolean {
  const mark = data[0];
  return mark === BATCH_MARK || mark === COMPACT_MARK;
}

/** Whether the call frame `data` takes compact replies. */
export function wantsCompact(data: Uint8Array): boolean {
  return data[0] === COMPACT_MARK;
}

/** Receives the items of a batch frame. */
export interface BatchReader {
  item(seq: number, body: Uint8Array): void;
}

/**
 * Hands each item of the batch frame `data` to `r`, in order; false when the frame is malformed
 * (a missing or non-numeric seq line), after the items before the fault. The transports read
 * frames with `readBatchText`; this byte form is for looking into raw frames (tests, probes).
 */
export function readBatch(data: Uint8Array, r: BatchReader): boolean {
  const n = data.length;
  let pos = 1;
  while (pos < n) {
    const nl = data.indexOf(NEWLINE, pos);
    if (nl <= pos || nl - pos > 15) return false;
    let seq = 0;
    for (let i = pos; i < nl; i++) {
      const d = (data[i] as number) - 48;
      if (d < 0 || d > 9) return false;
      seq = seq * 10 + d;
    }
    let end = data.indexOf(NEWLINE, nl + 1);
    if (end < 0) end = n;
    r.item(seq, data.subarray(nl + 1, end));
    pos = end + 1;
  }
  return true;
}

/** Receives the items of a batch frame read as text (`readBatchText`). */
export interface TextBatchReader {
  item(seq: number, body: string): void;
}

/** A frame's bytes as text (UTF-8; malformed sequences become U+FFFD, as decoding each item would make them). */
export function frameText(data: Uint8Array): string {
  return (Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString("utf8");
}

/**
 * `readBatch` over the frame's text (`frameText`): the items are slices of one string. Decoding
 * the frame once costs less than a Buffer and a UTF-8 decode per item (0.5 µs less per call item
 * of 265 bytes, 0.55 µs per compact reply: docs/performance.md, "Batch frames read as one
 * string"); a newline byte is never part of a multi-byte UTF-8 sequence, so the items are the
 * same either way.
 */
export function readBatchText(text: string, r: TextBatchReader): boolean {
  const n = text.length;
  let pos = 1;
  while (pos < n) {
    const nl = text.indexOf("\n", pos);
    if (nl <= pos || nl - pos > 15) return false;
    let seq = 0;
    for (let i = pos; i < nl; i++) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return false;
      seq = seq * 10 + d;
    }
    let end = text.indexOf("\n", nl + 1);
    if (end < 0) end = n;
    r.item(seq, text.slice(nl + 1, end));
    pos = end + 1;
  }
  return true;
}

/** Bytes an item adds to a frame besides its envelope: the seq, its newline and the separator. */
export function itemOverhead(seq: number): number {
  return digits(seq) + 2;
}

function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Items of one frame being built (text, sent as one string). */
export class FrameBuilder {
  #text: string;
  /** The frame's UTF-8 size so far. */
  bytes = 1;
  count = 0;

  /** A frame starting with `mark`: `#` (replies, and an older client's calls) or `%` (calls taking compact replies). */
  constructor(mark: "#" | "%" = "#") {
    this.#text = mark;
  }

  /** Adds an item whose envelope JSON is `json` of `size` UTF-8 bytes. */
  add(seq: number, json: string, size: number): void {
    this.#text = this.count === 0 ? `${this.#text}${seq}\n${json}` : `${this.#text}\n${seq}\n${json}`;
    this.bytes += size + itemOverhead(seq) - (this.count === 0 ? 1 : 0);
    this.count++;
  }

  get text(): string {
    return this.#text;
  }
}

/** The seq of a reply frame's taken notice item (no call's). */
export const TAKEN_SEQ = 0;

/** A taken notice item's body: instance `instanceId` runs the calls `seqs` of the frame's client. */
export function takenNotice(instanceId: string, seqs: readonly number[]): string {
  return `@${JSON.stringify([instanceId, ...seqs])}`;
}

/** A taken notice item's instance and calls, or undefined when `body` is not one. */
export function readTakenNotice(body: string): { instance: string; seqs: number[] } | undefined {
  if (body.charCodeAt(0) !== 0x40) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(body.slice(1));
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || typeof v[0] !== "string") return undefined;
  const seqs = v.slice(1).filter((n): n is number => typeof n === "number");
  return seqs.length === v.length - 1 ? { instance: v[0], seqs } : undefined;
}
