// Hand-written in the shape of generated code (like test/runtime/fixtures/shop.ts): three
// services `test.tel.A`, `B`, `C`, each with `hop` (calls the next one, if any, inside the
// handler) and a push `note`, for the telemetry suites.
import {
  type CallContext,
  type CallOptions,
  type ServiceDefinition,
  type ServiceDescriptor,
  defineService,
  FanError,
} from "../../src/runtime/index.js";
import { trace } from "@opentelemetry/api";

/** What `hop` returns: the trace and span ids each handler saw, innermost last. */
export interface HopReply {
  seen: string[];
}

export interface HopHandler {
  hop(req: { n: number; fail?: string | undefined }, ctx: CallContext): Promise<HopReply>;
  note(req: { id: string }, ctx: CallContext): Promise<void>;
}

export interface HopClient {
  hop(req: { n: number; fail?: string | undefined }, opts?: CallOptions): Promise<HopReply>;
  note(req: { id: string }, opts?: CallOptions): Promise<void>;
}

function descriptor(name: string): ServiceDescriptor {
  return {
    name,
    version: "1.0.0",
    transports: ["http", "amqp", "redis", "zmq", "local"],
    shards: 0,
    unique: false,
    methods: {
      hop: {
        name: "hop",
        kind: "rpc",
        input: {
          kind: "struct",
          name: `${name}.hop$input`,
          fields: [
            { name: "n", schema: { kind: "int" } },
            { name: "fail", schema: { kind: "string" }, optional: true },
          ],
        },
        output: {
          kind: "struct",
          name: `${name}.HopReply`,
          fields: [{ name: "seen", schema: { kind: "list", of: { kind: "string" } } }],
        },
        timeoutMs: 10_000,
        idempotent: false,
        retry: 0,
        throws: [],
      },
      note: {
        name: "note",
        kind: "push",
        input: { kind: "struct", name: `${name}.note$input`, fields: [{ name: "id", schema: { kind: "string" } }] },
        output: { kind: "void" },
        timeoutMs: 10_000,
        idempotent: false,
        retry: 0,
        throws: [],
      },
    },
    events: {},
    states: {},
    subscriptions: [],
    depends: [],
    errors: {},
  };
}

function define(name: string): ServiceDefinition<HopHandler, HopClient> {
  return defineService<HopHandler, HopClient>({
    descriptor: descriptor(name),
    createClient: (c) => ({
      hop: (req, opts) => c.call("hop", req, opts) as Promise<HopReply>,
      note: (req, opts) => c.push("note", req, opts),
    }),
  });
}

export const A = define("test.tel.A");
export const B = define("test.tel.B");
export const C = define("test.tel.C");

/** A `hop` handler that calls `next` (if any) and records what it saw. */
export class Hop implements HopHandler {
  /** `traceId/spanId` of each served call, as ctx reported it. */
  readonly contexts: Array<{ traceId: string; spanId: string; activeSpan: string | undefined }> = [];
  readonly notes: Array<{ id: string; traceparent: unknown; attempt: number }> = [];
  /** Fail this many `note` deliveries first. */
  noteFailures = 0;
  /** While set, `hop` waits for it before answering (to hold a call in flight). */
  gate: Promise<void> | undefined;

  constructor(private readonly next?: ServiceDefinition<unknown, HopClient>) {}

  async hop(req: { n: number; fail?: string | undefined }, ctx: CallContext): Promise<HopReply> {
    const active = trace.getActiveSpan()?.spanContext().spanId;
    this.contexts.push({ traceId: ctx.traceId, spanId: ctx.spanId, activeSpan: active });
    ctx.log.info({ n: req.n }, `hop ${ctx.service}`);
    if (this.gate !== undefined) await this.gate;
    const mine = `${ctx.traceId}/${ctx.spanId}`;
    if (this.next === undefined) {
      if (req.fail !== undefined) throw new FanError(req.fail as never, "asked to fail");
      return { seen: [mine] };
    }
    const inner = await ctx.client(this.next).hop({ n: req.n + 1, fail: req.fail });
    return { seen: [mine, ...inner.seen] };
  }

  async note(req: { id: string }, ctx: CallContext): Promise<void> {
    this.notes.push({ id: req.id, traceparent: ctx.headers.traceparent, attempt: ctx.attempt });
    if (this.noteFailures > 0) {
      this.noteFailures--;
      throw new FanError("UNAVAILABLE", "note failed on purpose");
    }
  }
}
