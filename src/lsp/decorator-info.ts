/** What each decorator means and how its arguments are written: for completion and hover. */

/** A decorator's example argument (none for flags), whether it is a string, and a one-line description. */
export interface DecoratorInfo {
  readonly arg?: string;
  readonly quoted?: boolean;
  readonly doc: string;
}

export const DECORATOR_INFO: Readonly<Record<string, DecoratorInfo>> = {
  deprecated: { arg: "reason", quoted: true, doc: "Marks it deprecated; generated code carries `@deprecated`." },
  code: { arg: "NOT_FOUND", doc: "The status code an error travels with." },
  version: { arg: "1.0.0", quoted: true, doc: "The service's version (else the package's `version` line)." },
  transports: { arg: "http", doc: "Transports the service serves on (http, amqp, redis, zmq, local)." },
  shards: { arg: "16", doc: "How many shards the service's keys spread over (default 16)." },
  unique: { doc: "At most one instance of the service runs in a cluster." },
  timeout: { arg: "2s", doc: "How long a caller waits for the rpc (default 10s)." },
  ttl: { arg: "30s", doc: "How long a push may wait for delivery." },
  idempotent: { doc: 'Safe to repeat: may be retried; needed by a GET route, and `@route("/path")` on it means GET.' },
  retry: { arg: "2", doc: "Extra attempts on failure (needs @idempotent)." },
  route: {
    arg: "/path",
    quoted: true,
    doc: "The HTTP verb and path (GET, POST, PUT, PATCH or DELETE; without a verb GET for an @idempotent rpc, else POST); `{param}` segments bind parameters.",
  },
  shard: { arg: "param", doc: "The parameter (or param.field path) whose value picks the shard." },
  fallback: {
    doc: "With @shard: when the shard's owner is gone or its breaker is open, the call goes to another instance instead of failing with UNAVAILABLE.",
  },
  since: { arg: "1.1.0", quoted: true, doc: "The service version that introduced the member." },
  broadcast: { doc: "Every instance of every subscriber receives the event (not one per service)." },
  full: { doc: "The state replicates in full on every change." },
  delta: { doc: "The state replicates as merge-patch deltas." },
  min: { arg: "0", doc: "Smallest allowed value." },
  max: { arg: "100", doc: "Largest allowed value." },
  minLength: { arg: "1", doc: "Shortest allowed string or bytes." },
  maxLength: { arg: "255", doc: "Longest allowed string or bytes." },
  maxItems: { arg: "100", doc: "Most items a list or map may hold." },
  pattern: { arg: "^[a-z]+$", quoted: true, doc: "A regular expression the string must match." },
  secret: { doc: "A config entry that is never logged." },
  auth: { arg: "role", quoted: true, doc: "Callers need credentials with one of these roles (none: any credentials)." },
};

/** The completion snippet of a decorator (LSP snippet syntax, without the `@`): `timeout(\$\{1:2s\})`. */
export function snippetOf(name: string, info: DecoratorInfo | undefined): string {
  if (info?.arg === undefined) return name;
  const q = info.quoted === true ? '"' : "";
  return `${name}(${q}$${"{"}1:${info.arg}}${q})`;
}

/** How a decorator is written, for the completion list: `@timeout(2s)`. */
export function exampleOf(name: string, info: DecoratorInfo | undefined): string {
  if (info?.arg === undefined) return `@${name}`;
  const q = info.quoted === true ? '"' : "";
  return `@${name}(${q}${info.arg}${q})`;
}
