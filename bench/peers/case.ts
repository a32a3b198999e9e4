/**
 * What one contender in `bench/peers` provides: a server side (in a process of its own) and a
 * client side (in another), or only a client side for in-process cases.
 */

/** Settings handed to both sides of a case by the orchestrator (`bench/peers.ts`). */
export interface CaseContext {
  /** Unique per run and case: cluster names, namespaces, queue and key prefixes. */
  readonly id: string;
  /** A free TCP port chosen by the orchestrator for the server side, when the case needs one. */
  readonly port: number;
  /** A second free port (Moleculer TCP's client node, the zmq event hub). */
  readonly port2: number;
  readonly redisUrl: string;
  readonly amqpUrl: string;
  readonly natsUrl: string;
  readonly etcd: string;
}

export interface Closable {
  close(): Promise<void>;
}

/** The server side of an rpc case: serves `Pricing.quote`. */
export type ServerSide = Closable;

/** The server side of an events case: three subscribing services counting deliveries. */
export interface EventsServerSide extends Closable {
  /** Counts received events per service; `onDone` fires once every service has `n`. */
  expect(n: number, onDone: () => void): void;
  readonly received: () => number[];
}

/** The client side of an rpc case: one call. */
export interface ClientSide extends Closable {
  readonly op: () => Promise<unknown>;
}

/** The client side of an events case: publishes tick `n`. */
export interface PublisherSide extends Closable {
  readonly publish: (n: number) => Promise<unknown>;
}

export interface RpcCase {
  readonly kind: "rpc";
  /** "fan redis", "moleculer Redis", ... */
  readonly name: string;
  /** Rows are compared within a medium: "redis", "amqp", "nats", "no broker", "http", "in-process". */
  readonly medium: string;
  /** Further media this case is compared on (fan http: "no broker" and "http"). */
  readonly alsoOn?: readonly string[];
  readonly fan: boolean;
  /** Absent for in-process cases. */
  readonly serve?: (ctx: CaseContext) => Promise<ServerSide>;
  readonly client: (ctx: CaseContext) => Promise<ClientSide>;
  /** In-process cases time batches of this many calls (the per-op timer would dominate). */
  readonly batch?: number;
}

export interface EventsCase {
  readonly kind: "events";
  readonly name: string;
  readonly medium: string;
  readonly fan: boolean;
  readonly serve: (ctx: CaseContext) => Promise<EventsServerSide>;
  readonly client: (ctx: CaseContext) => Promise<PublisherSide>;
}

export type PeerCase = RpcCase | EventsCase;

/** Counts deliveries to three services and reports when each has seen `n`. */
export function counters(): { hit(i: number): void; expect(n: number, onDone: () => void): void; received(): number[] } {
  const counts = [0, 0, 0];
  let want = Number.POSITIVE_INFINITY;
  let done: (() => void) | undefined;
  const check = (): void => {
    if (done !== undefined && counts.every((c) => c >= want)) {
      const d = done;
      done = undefined;
      d();
    }
  };
  return {
    hit(i) {
      counts[i] = (counts[i] as number) + 1;
      if (done !== undefined && counts[i] === want) check();
    },
    expect(n, onDone) {
      counts.fill(0);
      want = n;
      done = onDone;
      check();
    },
    received: () => [...counts],
  };
}
