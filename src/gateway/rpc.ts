/**
 * One rpc or push through the gateway: the JSON body (already parsed, bounded) is decoded with
 * the method's input schema (INVALID_ARGUMENT naming the field: 400, nothing sent), then sent
 * with the service's client from the gateway's App, under the request's deadline (`fan-timeout`
 * ms or `fan-deadline` epoch ms, never later than the method's @timeout) and inside its trace
 * (`traceparent`: the gateway's hop is a child span; a new trace when none came). The reply is
 * encoded back to wire JSON; an error keeps its code, and an IDL error its name and fields;
 * what else the client reads of it `Exposure` decides (exposure.ts).
 */
import type { ServerResponse } from "node:http";
import { runInContext, type Inherited } from "../runtime/call/callctx.js";
import { codec, type Codec } from "../runtime/codec/index.js";
import type { CallOptions, MethodDescriptor } from "../runtime/descriptor.js";
import { Code, FanError } from "../runtime/errors.js";
import { formatTraceparent, newSpanId, newTraceId, nextEnvelopeId, parseTraceparent } from "../runtime/ids.js";
import type { EnvelopeHeaders } from "../runtime/transports/transport.js";
import type { GatewayService } from "./catalog.js";
import type { Exposure } from "./exposure.js";
import { MAX_REPLY_BYTES, wireErrorOf, writeError, writeReply } from "./wire.js";

/** The runtime's own envelope headers: not passed on as custom headers. */
const OWN: ReadonlySet<string> = new Set([
  "traceparent",
  "tracestate",
  "deadline",
  "ttl",
  "replyTo",
  "shard",
  "attempt",
]);

/** Codecs of a method's input and output, made once per method. */
const codecs = new WeakMap<MethodDescriptor, { input: Codec<unknown>; output: Codec<unknown> | undefined }>();

function codecsOf(m: MethodDescriptor): { input: Codec<unknown>; output: Codec<unknown> | undefined } {
  let c = codecs.get(m);
  if (c === undefined) {
    c = { input: codec(m.input), output: m.output.kind === "void" ? undefined : codec(m.output) };
    codecs.set(m, c);
  }
  return c;
}

/**
 * The gateway's hop in the caller's trace (a child of `traceparent`, or a new trace), and the
 * context the call is sent in: calls inherit its deadline and trace as a handler's calls do.
 * A class rather than an object literal with a closure per request.
 */
class Hop implements Inherited {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceparent: string;

  constructor(
    parentHeader: unknown,
    readonly deadline: number,
  ) {
    const parent = parseTraceparent(parentHeader);
    this.traceId = parent?.traceId ?? newTraceId();
    this.spanId = newSpanId();
    this.traceparent = formatTraceparent(this.traceId, this.spanId, parent?.flags ?? "01");
  }

  childTraceparent(): string {
    return this.traceparent;
  }
}

/** Runs in the hop's context (`runInContext` passes the arguments: no closure per request). */
function send(
  client: GatewayService["client"],
  m: MethodDescriptor,
  input: unknown,
  opts: CallOptions,
): Promise<unknown> {
  return m.kind === "rpc" ? client.call(m.name, input, opts) : client.push(m.name, input, opts);
}

const JSON_TYPE = "application/json; charset=utf-8";

/**
 * A reply, written as `writeReply` (the http transport's writer) writes it, without building an
 * envelope and converting its headers: they are always the same four here.
 */
function answer(res: ServerResponse, wire: unknown, traceparent: string): void {
  if (wire === undefined) {
    res.writeHead(204, { traceparent, "fan-id": nextEnvelopeId(), "fan-kind": "reply" }).end();
    return;
  }
  const body = JSON.stringify(wire);
  const size = Buffer.byteLength(body, "utf8");
  if (size > MAX_REPLY_BYTES) {
    writeReply(res, wire, { traceparent }); // answers RESOURCE_EXHAUSTED, as it always did
    return;
  }
  res
    .writeHead(200, {
      traceparent,
      "fan-id": nextEnvelopeId(),
      "fan-kind": "reply",
      "content-type": JSON_TYPE,
      "content-length": String(size),
    })
    .end(body);
}

/**
 * Sends one call or push and writes its outcome on `res`. `body` is the parsed JSON arguments;
 * `headers` the envelope headers read from the request; `signal` fires when the client leaves;
 * `exposure` words a failure for the client.
 */
export function relay(
  res: ServerResponse,
  svc: GatewayService,
  m: MethodDescriptor,
  body: unknown,
  headers: EnvelopeHeaders,
  signal: AbortSignal,
  exposure: Exposure,
): Promise<void> {
  const c = codecsOf(m);
  const deadline = headers.deadline as number | undefined;
  const trace = new Hop(headers.traceparent, deadline ?? Number.POSITIVE_INFINITY);
  let input: unknown;
  try {
    input = c.input.decode(body, "");
  } catch (e) {
    writeError(res, wireErrorOf(e, svc.descriptor), { traceparent: trace.traceparent });
    return Promise.resolve();
  }
  let custom: Record<string, string> | undefined;
  for (const k in headers) {
    const v = headers[k];
    if (!OWN.has(k) && typeof v === "string") {
      custom ??= {};
      custom[k] = v;
    }
  }
  const opts: CallOptions =
    custom === undefined
      ? deadline === undefined
        ? { signal }
        : { signal, deadline }
      : deadline === undefined
        ? { signal, headers: custom }
        : { signal, deadline, headers: custom };
  return runInContext(trace, send, svc.client, m, input, opts).then(
    (value) => {
      if (m.kind === "push") {
        res.writeHead(202, { "fan-kind": "reply", traceparent: trace.traceparent, "content-length": "0" }).end();
        return;
      }
      let wire: unknown;
      try {
        wire = c.output === undefined || value === undefined ? undefined : c.output.encode(value, "reply");
      } catch (e) {
        // The service's reply, not the request, is at fault: INTERNAL, whatever code the codec threw.
        const why = `the reply of ${svc.descriptor.name}.${m.name} does not match the IDL: ${(e as Error).message}`;
        failed(res, new FanError(Code.INTERNAL, why, { cause: e }), svc, m, trace, exposure);
        return;
      }
      answer(res, wire, trace.traceparent);
    },
    (e: unknown) => failed(res, e, svc, m, trace, exposure),
  );
}

/** Writes the error a call failed with, as `exposure` lets the client read it. */
function failed(
  res: ServerResponse,
  e: unknown,
  svc: GatewayService,
  m: MethodDescriptor,
  trace: Hop,
  exposure: Exposure,
): void {
  const wire = exposure.outside(wireErrorOf(e, svc.descriptor), e, trace.traceId, {
    service: svc.descriptor.name,
    method: m.name,
  });
  writeError(res, wire, { traceparent: trace.traceparent }, e);
}
