/**
 * The browser side of a generated client: a `ClientCaller` that sends each rpc and push to a
 * `fanc gateway` with `fetch` (`POST /<service>/<method>`, the deadline as `fan-timeout` and as
 * an `AbortSignal.timeout`), and receives events and state updates over `EventSource`. The
 * generated `createClient` wraps it, so a page gets the same typed client, decoders and error
 * classes as a Node service.
 */
import { codec } from "../runtime/codec/index.js";
import { inRequest } from "../runtime/codec/fail.js";
import type {
  CallOptions,
  ClientCaller,
  EventStream,
  MethodDescriptor,
  ServiceDefinition,
  ServiceDescriptor,
  ShardedStateHandle,
  StateHandle,
} from "../runtime/descriptor.js";
import { Code, FanError } from "../runtime/errors.js";
import { openStream } from "./stream.js";
import { BrowserShardedState, BrowserState } from "./state.js";
import { errorOf, traceIdOf } from "./wire.js";

/** Options of `connect`. */
export interface GatewayOptions {
  /** The gateway's base URL, e.g. `https://api.example.com` (default: the page's origin). */
  readonly url?: string;
  /** Headers added to every call (custom envelope headers: `{ tenant: "acme" }` is sent as `fan-h-tenant`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** The fetch to use (default: the global one). */
  readonly fetch?: typeof fetch;
}

const TOKEN = /^[a-z0-9][a-z0-9_.-]*$/;

/** A typed client of `def` that calls a `fanc gateway`. */
export function connect<C>(def: ServiceDefinition<unknown, C>, opts: GatewayOptions = {}): C {
  return def.createClient(new GatewayCaller(def.descriptor, opts));
}

export class GatewayCaller implements ClientCaller {
  readonly #service: ServiceDescriptor;
  readonly #base: string;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #fetch: typeof fetch;

  constructor(service: ServiceDescriptor, opts: GatewayOptions) {
    this.#service = service;
    const origin = (globalThis as { location?: { origin?: string } }).location?.origin ?? "";
    this.#base = (opts.url ?? origin).replace(/\/+$/, "");
    this.#headers = opts.headers ?? {};
    this.#fetch = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  call(method: string, input: unknown, opts?: CallOptions): Promise<unknown> {
    return this.#send("rpc", method, input, opts);
  }

  async push(method: string, input: unknown, opts?: CallOptions): Promise<void> {
    await this.#send("push", method, input, opts);
  }

  event(name: string): EventStream<unknown> {
    return {
      subscribe: async (fn) => {
        const desc = this.#service.events[name];
        if (desc === undefined) throw this.#noMember("event", name);
        const c = codec(desc.payload);
        const stream = await openStream(this.#url(`_fan/events/${enc(this.#service.name)}/${enc(name)}`), (data) => {
          let value: unknown;
          try {
            value = c.decode(JSON.parse(data), name);
          } catch (e) {
            console.warn(
              `fan: dropped a ${this.#service.name}.${name} event that does not match the IDL: ${(e as Error).message}`,
            );
            return;
          }
          void fn(value);
        });
        return { unsubscribe: async () => stream.close() };
      },
    };
  }

  state(name: string): StateHandle<unknown> | ShardedStateHandle<unknown> {
    const desc = this.#service.states[name];
    if (desc === undefined) throw this.#noMember("state", name);
    const url = this.#url(`_fan/states/${enc(this.#service.name)}/${enc(name)}`);
    if (desc.sharded === true) return new BrowserShardedState(url, codec(desc.schema), name, this.#service.shards);
    return new BrowserState(url, codec(desc.schema), name);
  }

  #url(path: string): string {
    return `${this.#base}/${path}`;
  }

  #noMember(kind: string, name: string): FanError {
    return new FanError(Code.UNIMPLEMENTED, `${this.#service.name} has no ${kind} ${name}`);
  }

  async #send(kind: "rpc" | "push", name: string, input: unknown, opts: CallOptions | undefined): Promise<unknown> {
    const m: MethodDescriptor | undefined = this.#service.methods[name];
    if (m === undefined || m.kind !== kind) throw this.#noMember(kind, name);
    let body: string;
    try {
      body = JSON.stringify(codec(m.input).encode(input ?? {}, ""));
    } catch (e) {
      throw inRequest(e, `${this.#service.name}.${name}`);
    }
    const now = Date.now();
    let timeout = opts?.timeout ?? m.timeoutMs;
    if (opts?.deadline !== undefined) timeout = Math.min(timeout, opts.deadline - now);
    if (timeout <= 0)
      throw new FanError(Code.DEADLINE_EXCEEDED, `${this.#service.name}.${name}: deadline exceeded before sending`);
    const deadline = AbortSignal.timeout(timeout);
    if (opts?.signal === undefined) return this.#exchange(kind, name, m, body, timeout, opts, deadline, deadline);
    // The caller's signal may be long-lived (a page's): follow it for this call only, not by
    // `AbortSignal.any`, which stays on its sources until they abort.
    const given = opts.signal;
    const ac = new AbortController();
    const follow = (): void => ac.abort(given.aborted ? given.reason : deadline.reason);
    if (given.aborted) follow();
    given.addEventListener("abort", follow, { once: true });
    deadline.addEventListener("abort", follow, { once: true });
    try {
      return await this.#exchange(kind, name, m, body, timeout, opts, deadline, ac.signal);
    } finally {
      given.removeEventListener("abort", follow);
      deadline.removeEventListener("abort", follow);
    }
  }

  async #exchange(
    kind: "rpc" | "push",
    name: string,
    m: MethodDescriptor,
    body: string,
    timeout: number,
    opts: CallOptions | undefined,
    deadline: AbortSignal,
    signal: AbortSignal,
  ): Promise<unknown> {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "fan-timeout": String(Math.ceil(timeout)),
    };
    addCustom(headers, { ...this.#headers, ...opts?.headers });
    let res: Response;
    try {
      res = await this.#fetch(this.#url(`${enc(this.#service.name)}/${enc(name)}`), {
        method: "POST",
        body,
        headers,
        signal,
      });
    } catch (e) {
      if (deadline.aborted)
        throw new FanError(Code.DEADLINE_EXCEEDED, `${this.#service.name}.${name}: no answer within ${timeout} ms`);
      if (opts?.signal?.aborted === true)
        throw new FanError(Code.CANCELLED, `${this.#service.name}.${name}: cancelled`, { cause: e });
      throw new FanError(
        Code.UNAVAILABLE,
        `${this.#service.name}.${name}: cannot reach the gateway at ${this.#base}: ${(e as Error).message}`,
        {
          cause: e,
          ...(kind === "push" ? { details: { maybeDelivered: true } } : {}),
        },
      );
    }
    if (!res.ok) throw await errorOf(res, this.#service);
    opts?.onTrace?.({ traceId: traceIdOf(res) ?? "", spanId: "" });
    if (kind === "push" || res.status === 204 || m.output.kind === "void") return undefined;
    try {
      return codec(m.output).decode(await res.json(), "reply");
    } catch (e) {
      throw new FanError(Code.INTERNAL, `invalid reply from ${this.#service.name}.${name}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

/** Custom headers as the gateway (and the http transport) read them: `fan-h-<name>`, else one `fan-headers` JSON. */
function addCustom(out: Record<string, string>, custom: Readonly<Record<string, string>>): void {
  const odd: Record<string, string> = {};
  let any = false;
  for (const [k, v] of Object.entries(custom)) {
    if (TOKEN.test(k) && /^[\x20-\x7e]*$/.test(v)) out[`fan-h-${k}`] = v;
    else {
      odd[k] = v;
      any = true;
    }
  }
  if (any)
    out["fan-headers"] = JSON.stringify(odd).replace(
      /[^\x20-\x7e]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
}
