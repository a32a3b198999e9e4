/**
 * The endpoint a broker-backed instance advertises in discovery:
 * `{scheme}://{cluster}/{service}/{version}`, each part URI-encoded. The broker is named by the
 * transport's own connection settings, so the endpoint says only what to address on it.
 * Shared by the amqp and redis transports (no dependency of its own).
 */
import { Code, FanError } from "../errors.js";

/** What a broker endpoint addresses. */
export interface BrokerAddress {
  readonly cluster: string;
  readonly service: string;
  readonly version: string;
}

/** The endpoint of `service@version` in `cluster` for a transport named `scheme`. */
export function formatBrokerEndpoint(scheme: string, a: BrokerAddress): string {
  return `${scheme}://${encodeURIComponent(a.cluster)}/${encodeURIComponent(a.service)}/${encodeURIComponent(a.version)}`;
}

/**
 * A parser of `scheme`'s endpoints, remembering what it parsed (endpoints repeat on every call;
 * the memory is bounded). Throws UNAVAILABLE for anything `formatBrokerEndpoint` did not write.
 */
export function brokerEndpointParser(scheme: string): (endpoint: string) => BrokerAddress {
  const parsed = new Map<string, BrokerAddress>();
  const shape = new RegExp(`^${scheme}://([^/]+)/([^/]+)/([^/]+)$`);
  return (endpoint) => {
    const known = parsed.get(endpoint);
    if (known !== undefined) return known;
    const m = shape.exec(endpoint);
    if (m === null) throw new FanError(Code.UNAVAILABLE, `not a ${scheme} endpoint: ${endpoint}`);
    const a: BrokerAddress = {
      cluster: decodeURIComponent(m[1] as string),
      service: decodeURIComponent(m[2] as string),
      version: decodeURIComponent(m[3] as string),
    };
    if (parsed.size >= 10_000) parsed.clear();
    parsed.set(endpoint, a);
    return a;
  };
}
