/**
 * The zmq transport's frames. A DEALER sends `[head, body]` and the ROUTER receives them
 * behind the peer's routing id. `head` is one operation character followed by the message
 * id, so the server can answer a message whose body it refuses (too large, not JSON) without
 * parsing it; two frames, not three, because every frame costs a native call on both sides.
 *
 * | op | direction | body |
 * | --- | --- | --- |
 * | `C` call | client → server | the envelope (JSON) |
 * | `P` push | client → server | the envelope (JSON) |
 * | `X` cancel | client → server | empty: the call with this id was cancelled |
 * | `R` reply | server → client | a `reply` or `error` envelope; to a call id marked `%`, compact (below) |
 * | `A` ack | server → client | empty: the push finished |
 * | `N` nack | server → client | a WireError: not acknowledged, send again |
 *
 * Compact replies: a client marks its call ids with `%` (replies.ts: `COMPACT_ID_MARK`), and a
 * server answers such a call with `=` + the payload's JSON or `!` + the WireError's JSON when the
 * reply has no headers. An older server echoes the marked id and answers an envelope, which the
 * client reads too.
 *
 * Batches: a message may carry several pairs, `[head1, body1, head2, body2, ...]` (an even
 * number of frames from a DEALER; the ROUTER sends `[peer, head1, body1, ...]`). The sender
 * coalesces what was queued in one event-loop turn (writer.ts), at most `MAX_BATCH` pairs and
 * at most the message size limit in total; each pair is then handled exactly as if it had come
 * alone (each body decoded on its own, with the same bounds). A batch with more pairs or more
 * bytes than that is refused as a whole (see server.ts).
 *
 * Events are `[topic, publisherId, firstSeq, envelope1, envelope2, ...]` on PUB/SUB: one event,
 * or the events of one event-loop turn on one topic (see events.ts).
 */
import type { WireError } from "../../errors.js";
import type { Envelope, EnvelopeHeaders } from "../transport.js";

/** Operation codes of the first frame. */
export const Op = {
  CALL: "C",
  PUSH: "P",
  CANCEL: "X",
  REPLY: "R",
  ACK: "A",
  NACK: "N",
} as const;

/** Most `[head, body]` pairs in one message. */
export const MAX_BATCH = 256;

/** An upper bound of a frame's UTF-8 size, without scanning strings (3 bytes per UTF-16 unit). */
export function frameBound(frame: Buffer | string): number {
  return typeof frame === "string" ? frame.length * 3 : frame.byteLength;
}

/** Reads a frame as text (heads are short ASCII). */
export function text(frame: Buffer | undefined): string {
  return frame === undefined ? "" : frame.toString("latin1");
}

/** The head frame of a message: operation and id. */
export function head(op: string, id: string): string {
  return op + id;
}

/** An error envelope answering `id` (service and method may be unknown when the body was refused). */
export function errorEnvelope(id: string, err: WireError, service = "", method = ""): Envelope {
  return {
    v: 1,
    id,
    kind: "error",
    service,
    method,
    headers: {},
    payload: { code: err.code, message: err.message, ...(err.details === undefined ? {} : { details: err.details }) },
  };
}

/**
 * An envelope as JSON text, the same bytes `encodeEnvelope` (wire.ts) writes, left as a string:
 * zeromq encodes string frames natively, which saves a JS Buffer per message. `headers`
 * replaces the envelope's own (a client adds its deadline without copying the envelope).
 */
export function envelopeJson(env: Envelope, headers: EnvelopeHeaders = env.headers): string {
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

/** The UTF-8 size of `json` when it may exceed `max`, else 0 (no scan for short strings). */
export function oversize(json: string, max: number): number {
  if (json.length * 3 <= max) return 0;
  const bytes = Buffer.byteLength(json, "utf8");
  return bytes > max ? bytes : 0;
}
