/**
 * Health of one App: whether it serves (SERVING from the end of start until stop begins,
 * NOT_SERVING before and after), whether it is ready (serving and every hard dependency of its
 * services discoverable now), and the built-in `fan.Health` service every App serves on all
 * its transports (`check`, and `watch`, a long poll that answers when the status changes).
 * `GET /health` and `/ready` (http transport, admin port) and `fanc health` read the same state.
 */
import type { CallContext } from "../call/context.js";
import { defineService, type ServiceDefinition, type ServiceDescriptor, type CallOptions } from "../descriptor.js";
import type { StructSchema } from "../codec/schema.js";

/** A status as gRPC's health protocol names it. */
export type ServingStatus = "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

/** What `/ready` and `Health.readiness()` report. */
export interface Readiness {
  readonly ready: boolean;
  /** Why not, one line per reason (empty when ready). */
  readonly reasons: readonly string[];
}

type Phase = "new" | "starting" | "running" | "stopping" | "stopped";

/** The health state of one App. */
export class Health {
  #phase: Phase = "new";
  readonly #listeners = new Set<() => void>();
  readonly #services: () => readonly string[];
  readonly #missing: () => Promise<readonly string[]>;

  /**
   * `services`: the services this App serves; `missingDependencies`: the hard dependencies
   * (not served here) with no fitting instance in discovery now.
   */
  constructor(services: () => readonly string[], missingDependencies: () => Promise<readonly string[]>) {
    this.#services = services;
    this.#missing = missingDependencies;
  }

  /** The lifecycle phase: `new`, `starting`, `running`, `stopping`, `stopped`. */
  get phase(): Phase {
    return this.#phase;
  }

  /** Lifecycle transitions (called by the App). */
  set(phase: Phase): void {
    if (this.#phase === phase) return;
    this.#phase = phase;
    for (const fn of [...this.#listeners]) fn();
  }

  /** SERVING while the App runs; SERVICE_UNKNOWN for a service it does not serve ("" = the App). */
  status(service = ""): ServingStatus {
    if (service !== "" && service !== HEALTH_SERVICE && !this.#services().includes(service)) return "SERVICE_UNKNOWN";
    return this.#phase === "running" ? "SERVING" : "NOT_SERVING";
  }

  /** Ready: started, not stopping, and every hard dependency discoverable. */
  async readiness(): Promise<Readiness> {
    if (this.#phase !== "running")
      return {
        ready: false,
        reasons: [
          this.#phase === "new" || this.#phase === "starting"
            ? "the app has not finished starting"
            : "the app is stopping",
        ],
      };
    const missing = await this.#missing();
    return { ready: missing.length === 0, reasons: missing.map((m) => `no instance of hard dependency ${m}`) };
  }

  /** Calls `fn` on every phase change; returns its removal. */
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Resolves when `status(service)` is not `last`, or `signal` aborts (then with the current status). */
  changed(service: string, last: string, signal: AbortSignal): Promise<ServingStatus> {
    const now = this.status(service);
    if (now !== last || signal.aborted) return Promise.resolve(now);
    return new Promise((resolve) => {
      const done = (): void => {
        off();
        signal.removeEventListener("abort", done);
        resolve(this.status(service));
      };
      const off = this.onChange(() => {
        if (this.status(service) !== last) done();
      });
      signal.addEventListener("abort", done);
    });
  }
}

/** The built-in health service's name. */
export const HEALTH_SERVICE = "fan.Health";

/** `fan.Health` requests and replies. */
export interface HealthRequest {
  /** The service asked about; "" (or absent) for the App as a whole. */
  service?: string;
}
export interface HealthWatchRequest extends HealthRequest {
  /** The status the caller knows; the call answers when it differs (or near the deadline). */
  last?: string;
}
export interface HealthReply {
  status: ServingStatus;
}

/** The handler of `fan.Health`. */
export interface HealthHandler {
  check(req: HealthRequest, ctx: CallContext): Promise<HealthReply>;
  watch(req: HealthWatchRequest, ctx: CallContext): Promise<HealthReply>;
}

/** The client of `fan.Health`. */
export interface HealthClient {
  check(req: HealthRequest, opts?: CallOptions): Promise<HealthReply>;
  watch(req: HealthWatchRequest, opts?: CallOptions): Promise<HealthReply>;
}

const REPLY: StructSchema = {
  kind: "struct",
  name: "fan.HealthReply",
  fields: [{ name: "status", schema: { kind: "string" } }],
};

function input(method: string, withLast: boolean): StructSchema {
  return {
    kind: "struct",
    name: `fan.Health.${method}$input`,
    fields: [
      { name: "service", schema: { kind: "string" }, default: "" },
      ...(withLast ? [{ name: "last", schema: { kind: "string" as const }, default: "" }] : []),
    ],
  };
}

const method = (name: string, withLast: boolean, timeoutMs: number) => ({
  name,
  kind: "rpc" as const,
  input: input(name, withLast),
  output: REPLY,
  timeoutMs,
  idempotent: true,
  retry: 0,
  throws: [],
});

/** What the runtime executes for `fan.Health` (written by hand: the runtime cannot import generated code). */
export const HealthDescriptor: ServiceDescriptor = {
  name: HEALTH_SERVICE,
  version: "1.0.0",
  transports: ["http", "amqp", "redis", "nats", "zmq", "tcp", "local"],
  shards: 0,
  unique: false,
  methods: { check: method("check", false, 5000), watch: method("watch", true, 60_000) },
  events: {},
  states: {},
  subscriptions: [],
  depends: [],
  errors: {},
};

/** The `fan.Health` service definition: `app.client(HealthService).check({ service })`. */
export const HealthService: ServiceDefinition<HealthHandler, HealthClient> = defineService<HealthHandler, HealthClient>(
  {
    descriptor: HealthDescriptor,
    createClient: (c) => ({
      check: (req, opts) => c.call("check", req, opts) as Promise<HealthReply>,
      watch: (req, opts) => c.call("watch", req, opts) as Promise<HealthReply>,
    }),
  },
);

/** Answers `watch` this long before its deadline with the unchanged status. */
const WATCH_MARGIN_MS = 250;

/** The handler every App serves as `fan.Health`. */
export function healthHandler(health: Health): HealthHandler {
  return {
    async check(req) {
      return { status: health.status(req.service ?? "") };
    },
    async watch(req, ctx) {
      const ac = new AbortController();
      const left = ctx.deadline - Date.now() - WATCH_MARGIN_MS;
      const timer = setTimeout(() => ac.abort(), Math.max(0, Math.min(left, 2_147_000_000)));
      const stop = (): void => ac.abort();
      if (ctx.signal.aborted) stop();
      else ctx.signal.addEventListener("abort", stop);
      try {
        return { status: await health.changed(req.service ?? "", req.last ?? "", ac.signal) };
      } finally {
        clearTimeout(timer);
        ctx.signal.removeEventListener("abort", stop);
      }
    },
  };
}
