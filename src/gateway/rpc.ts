/**
 * One rpc or push through the gateway: the JSON body (already parsed, bounded) is decoded with
 * the method's input schema (INVALID_ARGUMENT naming the field: 400, nothing sent), then sent
 * with the service's client from the gateway's App, under the request's deadline (`fan-timeout`
 * ms or `fan-deadline` epoch ms, never later than the method's @timeout) and inside its trace
 * (`traceparent`: the gateway's hop is a child span; a new trace when none came). The reply is
 * encoded back to wire JSON; an error keeps its code, IDL name and fields.
 */
import type { ServerResponse } from "node:http";
import { runInContext, type Inherited } from "../runtime/call/callctx.js";
import { codec, type Codec } from "../runtime/codec/index.js";
import type { CallOptions, MethodDescriptor } from "../runtime/descriptor.js";
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent } from "../runtime/ids.js";
import type { EnvelopeHeaders } from "../runtime/transports/transport.js";
import type { GatewayService } from "./catalog.js";
import { wireErrorOf, writeError, writeReply } from "./wire.js";

/** The runtime's own envelope headers: not passed on as custom headers. */
const OWN: ReadonlySet<string> = new Set(["traceparent", "tracestate", "deadline", "ttl", "replyTo", "shard", "attempt"]);

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

/** The gateway's hop in the caller's trace: a child of `traceparent`, or a new trace. */
function hop(traceparent: unknown): { traceparent: string; traceId: string; spanId: string } {
  const parent = parseTraceparent(traceparent);
  const traceId = parent?.traceId ?? newTraceId();
  const spanId = newSpanId();
  return { traceparent: formatTraceparent(traceId, spanId, parent?.flags ?? "01"), traceId, spanId };
}

/**
 * Sends one call or push and writes its outcome on `res`. `body` is the parsed JSON arguments;
 * `headers` the envelope headers read from the request; `signal` fires when the client leaves.
 */
export function relay(
  res: ServerResponse,
  svc: GatewayService,
  m: MethodDescriptor,
  body: unknown,
  headers: EnvelopeHeaders,
  signal: AbortSignal,
): Promise<void> {
  const c = codecsOf(m);
  const trace = hop(headers.traceparent);
  const replyHeaders: EnvelopeHeaders = { traceparent: trace.traceparent };
  let input: unknown;
  try {
    input = c.input.decode(body, "");
  } catch (e) {
    writeError(res, wireErrorOf(e, svc.descriptor), replyHeaders);
    return Promise.resolve();
  }
  const custom: Record<string, string> = {};
  let any = false;
  for (const k in headers) {
    const v = headers[k];
    if (!OWN.has(k) && typeof v === "string") {
      custom[k] = v;
      any = true;
    }
  }
  const opts: CallOptions = {
    signal,
    ...(headers.deadline !== undefined ? { deadline: headers.deadline as number } : {}),
    ...(any ? { headers: custom } : {}),
  };
  const ctx: Inherited = {
    deadline: (headers.deadline as number | undefined) ?? Number.POSITIVE_INFINITY,
    traceId: trace.traceId,
    spanId: trace.spanId,
    childTraceparent: () => trace.traceparent,
  };
  const sent =
    m.kind === "rpc"
      ? runInContext(ctx, () => svc.client.call(m.name, input, opts))
      : runInContext(ctx, () => svc.client.push(m.name, input, opts));
  return sent.then(
    (value) => {
      if (m.kind === "push") {
        res.writeHead(202, { "fan-kind": "reply", traceparent: trace.traceparent, "content-length": "0" }).end();
        return;
      }
      let wire: unknown;
      try {
        wire = c.output === undefined || value === undefined ? undefined : c.output.encode(value, "reply");
      } catch (e) {
        writeError(res, wireErrorOf(e, svc.descriptor), replyHeaders);
        return;
      }
      writeReply(res, wire, replyHeaders);
    },
    (e: unknown) => writeError(res, wireErrorOf(e, svc.descriptor), replyHeaders),
  );
}
