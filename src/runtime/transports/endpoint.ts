/**
 * The endpoint a broker-backed instance advertises in discovery:
 * `{scheme}://{cluster}/{service}/{version}/{instanceId}`, each part URI-encoded. Calls go to
 * the version's shared queue (the broker picks a consumer) unless they carry a `shard` header:
 * those go to the named instance's own queue (`docs/sharding.md`). An endpoint without the
 * instance part (written before sharding) addresses the version only. The broker is named by the
 * transport's own connection settings, so the endpoint says only what to address on it.
 * Shared by the amqp, redis and nats transports (no dependency of its own).
 */
import { Code, FanError } from "../errors.js";

/** What a broker endpoint addresses. */
export interface BrokerAddress {
  readonly cluster: string;
  readonly service: string;
  readonly version: string;
  /** The serving instance, when the endpoint names one. */
  readonly instance?: string;
}

/** The endpoint of `service@version` in `cluster` for a transport named `scheme`. */
export function formatBrokerEndpoint(scheme: string, a: BrokerAddress): string {
  const base = `${scheme}://${encodeURIComponent(a.cluster)}/${encodeURIComponent(a.service)}/${encodeURIComponent(a.version)}`;
  return a.instance === undefined ? base : `${base}/${encodeURIComponent(a.instance)}`;
}

/**
 * A parser of `scheme`'s endpoints, remembering what it parsed (endpoints repeat on every call;
 * the memory is bounded). Throws UNAVAILABLE for anything `formatBrokerEndpoint` did not write.
 */
export function brokerEndpointParser(scheme: string): (endpoint: string) => BrokerAddress {
  const parsed = new Map<string, BrokerAddress>();
  const shape = new RegExp(`^${scheme}://([^/]+)/([^/]+)/([^/]+)(?:/([^/]+))?$`);
  return (endpoint) => {
    const known = parsed.get(endpoint);
    if (known !== undefined) return known;
    const m = shape.exec(endpoint);
    if (m === null) throw new FanError(Code.UNAVAILABLE, `not a ${scheme} endpoint: ${endpoint}`);
    const a: BrokerAddress = {
      cluster: decodeURIComponent(m[1] as string),
      service: decodeURIComponent(m[2] as string),
      version: decodeURIComponent(m[3] as string),
      ...(m[4] === undefined ? {} : { instance: decodeURIComponent(m[4]) }),
    };
    if (parsed.size >= 10_000) parsed.clear();
    parsed.set(endpoint, a);
    return a;
  };
}
