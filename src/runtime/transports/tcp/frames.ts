/**
 * The tcp transport's wire format: a client opens the connection with the 4-byte preamble
 * `FAN\x01`, then both sides write frames
 *
 * | bytes | field |
 * | --- | --- |
 * | 4 | length of the rest of the frame (big-endian u32): 5 + the body's size |
 * | 1 | operation (`Op`) |
 * | 4 | correlation number (big-endian u32), chosen by the client per request |
 * | n | body: the envelope as UTF-8 JSON (wire.ts), a WireError (`NACK`), or nothing |
 *
 * | op | direction | body |
 * | --- | --- | --- |
 * | 1 call | client → server | the envelope |
 * | 2 push | client → server | the envelope |
 * | 3 cancel | client → server | empty: the call with this number was cancelled |
 * | 4 reply | server → client | a `reply` or `error` envelope |
 * | 5 ack | server → client | empty: the push finished |
 * | 6 nack | server → client | a WireError: not acknowledged |
 * | 7 hello | server → client | empty, correlation 0: this server answers calls compactly if asked |
 * | 8 compact | client → server | empty, correlation 0: answer this connection's calls compactly |
 * | 9 ok | server → client | a call's reply payload as JSON (empty: none), after `compact` |
 * | 10 fail | server → client | a call's WireError as JSON, after `compact` |
 *
 * A server sends `hello` first on every connection; a client from before it ignores it (its
 * requests are numbered from 1; only one numbered 0 after its counter wrapped, 2^32 requests
 * to one endpoint, would fail INTERNAL), a newer one answers `compact` (and never numbers a
 * request 0), and from then on the server answers a handler's reply or error without headers
 * with `ok` or `fail` (replies.ts: `compactPayload`); its own refusals (undecodable, unknown
 * service or method, over the size limit) and replies with headers still go as `reply`. A client
 * never sends `compact` to a server that did not say `hello`, so an older server never sees it.
 *
 * The correlation number is in the fixed header, so a body the server refuses (too large, not
 * JSON) is still answered under it, and matching an answer is one Map lookup on a number.
 *
 * Writes are coalesced: frames queued in one event-loop turn go out as one buffer in one
 * `socket.write` (flushed on `process.nextTick`, so a lone frame leaves in the same turn).
 */
import type { Socket } from "node:net";
import type { Envelope, EnvelopeHeaders } from "../transport.js";

/** Operation codes. */
export const Op = {
  CALL: 1,
  PUSH: 2,
  CANCEL: 3,
  REPLY: 4,
  ACK: 5,
  NACK: 6,
  HELLO: 7,
  COMPACT: 8,
  OK: 9,
  FAIL: 10,
} as const;

/** What a client writes first on a new connection. */
export const PREAMBLE = Buffer.from("FAN\u0001", "latin1");

/** Bytes before the body: length (4), op (1), correlation (4). */
export const HEADER = 9;

/**
 * A frame whose declared body exceeds the size limit by more than this is not skipped but
 * ends the connection (a length that large is garbage, not a big message).
 */
const SKIP_MAX = 64 * 1024 * 1024;

/** Frames queued in one turn beyond this many bytes (upper bound) are written at once. */
const FLUSH_BYTES = 1024 * 1024;

/** Strings longer than this are measured exactly instead of bounded at 3 bytes per unit. */
const MEASURE_OVER = 16 * 1024;

/**
 * An envelope as JSON text (the bytes wire.ts's `encodeEnvelope` writes); `headers` replaces
 * the envelope's own, so a client adds its deadline without copying the envelope.
 */
export function envelopeText(env: Envelope, headers: EnvelopeHeaders = env.headers): string {
  return JSON.stringify({
    v: env.v,
    id: env.id,
    kind: env.kind,
    service: env.service,
    method: env.method,
    version: env.version,
    headers,
    payload: env.payload,
  });
}

/** Coalesces the frames queued for one socket in one event-loop turn into one write. */
export class FrameWriter {
  private ops: number[] = [];
  private corrs: number[] = [];
  private bodies: string[] = [];
  private bound = 0;
  private scheduled = false;

  constructor(private readonly socket: Socket) {}

  /** Queues a frame; it leaves with the others of this turn. */
  queue(op: number, corr: number, body: string): void {
    this.ops.push(op);
    this.corrs.push(corr);
    this.bodies.push(body);
    this.bound += HEADER + (body.length > MEASURE_OVER ? Buffer.byteLength(body, "utf8") : body.length * 3);
    if (this.bound >= FLUSH_BYTES) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.flush);
    }
  }

  /** Writes what is queued as one buffer. */
  readonly flush = (): void => {
    this.scheduled = false;
    const n = this.ops.length;
    if (n === 0) return;
    const buf = Buffer.allocUnsafe(this.bound);
    let off = 0;
    for (let i = 0; i < n; i++) {
      const body = this.bodies[i] as string;
      const start = off;
      off += HEADER;
      if (body.length > 0) off += buf.write(body, off, "utf8");
      buf.writeUInt32BE(off - start - 4, start);
      buf[start + 4] = this.ops[i] as number;
      buf.writeUInt32BE(this.corrs[i] as number, start + 5);
    }
    this.ops = [];
    this.corrs = [];
    this.bodies = [];
    this.bound = 0;
    if (!this.socket.destroyed) this.socket.write(off === buf.length ? buf : buf.subarray(0, off));
  };
}

/** What a reader reports. */
export interface FrameSink {
  /** A whole frame; `body` is a view into the received bytes, valid until this call returns. */
  frame(op: number, corr: number, body: Buffer): void;
  /** A frame whose body exceeds the limit: its bytes are skipped. */
  oversize(op: number, corr: number, bytes: number): void;
  /** Bytes that cannot be frames: the connection must end. */
  garbage(why: string): void;
}

/**
 * Splits received bytes into frames without copying a frame that arrived whole; a frame split
 * across reads is copied once into a buffer of its size.
 */
export class FrameReader {
  /** Bytes of the preamble still expected (server side). */
  private preamble: number;
  private readonly head = Buffer.allocUnsafe(HEADER);
  private headLen = 0;
  private frame: Buffer | undefined;
  private filled = 0;
  private frameOp = 0;
  private frameCorr = 0;
  private skip = 0;
  private failed = false;

  constructor(
    private readonly maxBody: number,
    private readonly sink: FrameSink,
    expectPreamble: boolean,
  ) {
    this.preamble = expectPreamble ? PREAMBLE.length : 0;
  }

  /** Feeds received bytes. */
  push(chunk: Buffer): void {
    if (this.failed) return;
    const n = chunk.length;
    let off = 0;
    while (this.preamble > 0 && off < n) {
      if (chunk[off] !== PREAMBLE[PREAMBLE.length - this.preamble]) {
        this.fail("the connection does not start with fan's tcp preamble");
        return;
      }
      off++;
      this.preamble--;
    }
    while (off < n) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, n - off);
        this.skip -= k;
        off += k;
        continue;
      }
      const frame = this.frame;
      if (frame !== undefined) {
        const k = Math.min(frame.length - this.filled, n - off);
        chunk.copy(frame, this.filled, off, off + k);
        this.filled += k;
        off += k;
        if (this.filled === frame.length) {
          this.frame = undefined;
          this.sink.frame(this.frameOp, this.frameCorr, frame);
        }
        continue;
      }
      let h: Buffer;
      let at: number;
      if (this.headLen > 0 || n - off < HEADER) {
        const k = Math.min(HEADER - this.headLen, n - off);
        chunk.copy(this.head, this.headLen, off, off + k);
        this.headLen += k;
        off += k;
        if (this.headLen < HEADER) return;
        this.headLen = 0;
        h = this.head;
        at = 0;
      } else {
        h = chunk;
        at = off;
        off += HEADER;
      }
      const len = h.readUInt32BE(at);
      const op = h[at + 4] as number;
      const corr = h.readUInt32BE(at + 5);
      if (len < 5) {
        this.fail(`a frame declares ${len} bytes, less than its header`);
        return;
      }
      const body = len - 5;
      if (body > this.maxBody) {
        if (body > this.maxBody + SKIP_MAX) {
          this.fail(`a frame declares ${body} bytes, far over the limit of ${this.maxBody}`);
          return;
        }
        this.skip = body;
        this.sink.oversize(op, corr, body);
        continue;
      }
      if (n - off >= body) {
        const view = chunk.subarray(off, off + body);
        off += body;
        this.sink.frame(op, corr, view);
      } else {
        this.frame = Buffer.allocUnsafe(body);
        this.filled = 0;
        this.frameOp = op;
        this.frameCorr = corr;
      }
    }
  }

  private fail(why: string): void {
    this.failed = true;
    this.frame = undefined;
    this.sink.garbage(why);
  }
}

/** `tcp://host:port` as host and port; throws a plain Error naming what is wrong. */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  if (!endpoint.startsWith("tcp://")) throw new Error(`not a tcp endpoint: ${JSON.stringify(endpoint)}`);
  let url: URL;
  try {
    url = new URL(`http://${endpoint.slice(6)}`);
  } catch {
    throw new Error(`not a tcp endpoint: ${JSON.stringify(endpoint)}`);
  }
  const port = Number(url.port);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`tcp endpoint without a port: ${JSON.stringify(endpoint)}`);
  return { host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port };
}
