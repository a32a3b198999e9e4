/**
 * Answers the broker transports' rpc servers give on their own, before or instead of the
 * App's dispatcher: a refusal for a request this queue or list does not serve, and the error
 * envelope that carries it (or any other transport-level failure) back to the caller.
 * Shared by amqp, redis and nats (no dependency of its own).
 */
import { type CallSink, errorReply, okReply } from "../call/dispatch.js";
import { decodeEnvelope, encodeEnvelopeText, parseJson } from "../codec/wire.js";
import type { ServiceDescriptor } from "../descriptor.js";
import { Code, FanError, type WireError } from "../errors.js";
import type { CallSignal } from "./abort.js";
import { COMPACT_MARK } from "./batch-frame.js";
import type { Envelope, Inbound } from "./transport.js";

/**
 * A call (or, when `push` is allowed, a push) decoded from `body` and checked against
 * `service`; a FanError (INVALID_ARGUMENT, or NOT_FOUND for another service) when it is not one.
 */
export function decodeServed(
  service: ServiceDescriptor,
  body: Uint8Array | string,
  maxBytes: number,
  push: boolean,
  where: string,
): Envelope | FanError {
  try {
    const env = decodeEnvelope(body, { maxBytes });
    if (env.kind !== "call" && !(push && env.kind === "push"))
      return new FanError(Code.INVALID_ARGUMENT, `expected a call${push ? " or push" : ""}, got a ${env.kind}`);
    return refuse(service, env, where) ?? env;
  } catch (e) {
    return FanError.from(e, Code.INVALID_ARGUMENT);
  }
}

/**
 * NOT_FOUND for a call to another service, UNIMPLEMENTED for a method the served version does not
 * have (as the App's dispatcher answers: docs/runtime.md); `where` names what received it ("this
 * queue", "this list").
 */
export function refuse(service: ServiceDescriptor, env: Envelope, where: string): FanError | undefined {
  if (env.service !== service.name)
    return new FanError(Code.NOT_FOUND, `service ${env.service} is not served here (${where} serves ${service.name})`);
  // A push comes this way only to one instance (a `@shard` push to its owner: owner-push.ts).
  if (service.methods[env.method]?.kind !== (env.kind === "push" ? "push" : "rpc"))
    return new FanError(Code.UNIMPLEMENTED, `unknown method ${env.service}/${env.method}`);
  return undefined;
}

/** An error envelope answering `env` (or an undecodable request, when undefined). */
export function errorEnvelope(id: string, env: Envelope | undefined, e: FanError): Envelope {
  return {
    v: 1,
    id,
    kind: "error",
    service: env?.service ?? "",
    method: env?.method ?? "",
    headers: {},
    payload: { code: e.code, message: e.message },
  };
}

/** An Inbound that reports a call's outcome to a sink (the App's dispatcher: `Dispatcher.run`). */
type SinkInbound = Inbound & { run(env: Envelope, signal: CallSignal, sink: CallSink): void };

/**
 * Where the App's dispatcher reports one served call: the reply or error envelope goes to
 * `answer`, once. Instead of `Inbound.call`'s promise and the two reactions on it (and the
 * microtask hops between them), a reply of a synchronous handler reaches the transport before
 * `run` returns. The subclass holds what its server needs to route the reply.
 */
export abstract class ReplySink implements CallSink {
  #open = true;

  constructor(
    private readonly env: Envelope,
    private readonly version: string,
  ) {}

  protected abstract answer(reply: Envelope): void;

  reply(payload: unknown): void {
    if (!this.#open) return;
    this.#open = false;
    this.answer(okReply(this.env, payload, this.version));
  }

  error(err: WireError): void {
    if (!this.#open) return;
    this.#open = false;
    this.answer(errorReply(this.env, err, this.version));
  }
}

/**
 * Runs a call through `inbound.run` with `sink` when the inbound has it (an App's dispatcher);
 * false when it has not (the caller uses `Inbound.call`). A throw from `run` is the call's error.
 */
export function runWithSink(inbound: Inbound, env: Envelope, signal: CallSignal, sink: ReplySink): boolean {
  const run = (inbound as Partial<SinkInbound>).run;
  if (run === undefined) return false;
  try {
    run.call(inbound, env, signal, sink);
  } catch (e) {
    const err = FanError.from(e);
    sink.error({ code: err.code, message: err.message });
  }
  return true;
}

/** A reply's bytes or text as an envelope, or the error reading it gave (a malformed reply fails its call). */
export function decodeReply(data: Uint8Array | string, maxBytes: number): Envelope | FanError {
  try {
    return decodeEnvelope(data, { maxBytes });
  } catch (e) {
    return FanError.from(e);
  }
}

/**
 * The JSON a compact reply carries (`""` when there is no payload, or one JSON cannot hold: the
 * envelope form leaves it out too), or undefined when `out` travels as its whole envelope (not
 * a reply or an error, or it has headers). The client knows which call a reply answers from its
 * frame (a batch item's `seq`, a tcp frame's correlation number), so the envelope's id, service,
 * method and version need not travel back.
 */
export function compactPayload(out: Envelope): string | undefined {
  if ((out.kind !== "reply" && out.kind !== "error") || !noHeaders(out.headers)) return undefined;
  const json: string | undefined = JSON.stringify(out.payload);
  return json ?? "";
}

function noHeaders(h: Envelope["headers"]): boolean {
  for (const _ in h) return false;
  return true;
}

/**
 * A served call's reply as a reply frame item: to a client that takes compact replies
 * (batch-frame.ts: its call frame started with `%`), `=` or `!` and `compactPayload`; otherwise,
 * or when the reply cannot be compact, its envelope's JSON.
 */
export function encodeFrameReply(out: Envelope, compact: boolean): string {
  const json = compact ? compactPayload(out) : undefined;
  return json === undefined ? encodeEnvelopeText(out) : `${out.kind === "reply" ? "=" : "!"}${json}`;
}

/**
 * A compact reply (`compactPayload`'s JSON as bytes; an error's when `error`) as an envelope
 * answering a call to `service`, or the error reading it gave. The payload gets the same bounds
 * as an envelope's (wire.ts: `parseJson`), and an error's must be an object (a WireError: owner
 * pushes and `fanc health` read its code).
 */
export function decodeCompact(
  error: boolean,
  json: Uint8Array | string,
  maxBytes: number,
  service: string,
): Envelope | FanError {
  try {
    const payload = json.length === 0 ? undefined : parseJson(json, { maxBytes });
    if (error && (payload === null || typeof payload !== "object" || Array.isArray(payload)))
      return new FanError(Code.INVALID_ARGUMENT, "not a fan reply: an error must be an object");
    return { v: 1, id: "", kind: error ? "error" : "reply", service, method: "", headers: {}, payload };
  } catch (e) {
    return FanError.from(e);
  }
}

/** A compact reply item's first character: a reply (`=`, then `compactPayload`). */
const REPLY_ITEM = 0x3d;
/** A compact reply item's first character: an error (`!`, then `compactPayload`). */
const ERROR_ITEM = 0x21;

/**
 * A reply frame item (`encodeFrameReply`'s either form), as bytes or as text (redis replies
 * travel as strings), as an envelope answering a call to `service`, or the error reading it gave.
 */
export function decodeFrameReply(body: Uint8Array | string, maxBytes: number, service: string): Envelope | FanError {
  const text = typeof body === "string";
  const mark = text ? body.charCodeAt(0) : body[0];
  if (mark !== REPLY_ITEM && mark !== ERROR_ITEM) return decodeReply(body, maxBytes);
  return decodeCompact(mark === ERROR_ITEM, text ? body.slice(1) : body.subarray(1), maxBytes, service);
}

/**
 * The first character of a correlation id that asks for compact replies, where the id is text
 * the server echoes (redis `corr`, zmq message ids): the batch frames' compact mark
 * (batch-frame.ts). An older server echoes it unread and answers with whole envelopes, which
 * `decodeFrameReply` reads too.
 */
export const COMPACT_ID_MARK = String.fromCharCode(COMPACT_MARK);

/** True when correlation id `id` asks for compact replies (`COMPACT_ID_MARK`). */
export function wantsCompactReply(id: string): boolean {
  return id.charCodeAt(0) === COMPACT_MARK;
}
