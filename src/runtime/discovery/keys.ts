/**
 * The key layout under `/fan/{cluster}/`, readable with plain `etcdctl get --prefix /fan/`:
 *
 * | key | value |
 * | --- | --- |
 * | `/fan/{cluster}/services/{service}/{instanceId}` | InstanceInfo JSON, held by a lease |
 * | `/fan/{cluster}/config/{service}/{key}` | one top-level config key, JSON |
 * | `/fan/{cluster}/election/{service}/{instanceId}` | a candidate of a `@unique` service, held by a lease |
 * | `/fan/{cluster}/ids/{name}` | the last id handed out by `nextId` |
 * | `/fan/{cluster}/breakers/{service}/{appId}` | the breakers an App holds open or half-open on instances of a service, held by a lease |
 */

const SEGMENT = /^[A-Za-z0-9_.:@$-]+$/;

/** Throws a clear error when `s` cannot be one segment of a key. */
export function checkSegment(what: string, s: string): string {
  if (typeof s !== "string" || !SEGMENT.test(s)) {
    throw new TypeError(`${what} must be a non-empty string of letters, digits and _.:@$- (got ${JSON.stringify(s)})`);
  }
  return s;
}

/** `/fan/{cluster}/` */
export function clusterPrefix(cluster: string): string {
  return `/fan/${checkSegment("cluster", cluster)}/`;
}

/** `/fan/{cluster}/services/` */
export function servicesRoot(cluster: string): string {
  return `${clusterPrefix(cluster)}services/`;
}

/** `/fan/{cluster}/services/{service}/` */
export function servicePrefix(cluster: string, service: string): string {
  return `${servicesRoot(cluster)}${checkSegment("service", service)}/`;
}

/** `/fan/{cluster}/services/{service}/{instanceId}` */
export function instanceKey(cluster: string, service: string, instanceId: string): string {
  return servicePrefix(cluster, service) + checkSegment("instanceId", instanceId);
}

/** `/fan/{cluster}/config/` */
export function configRoot(cluster: string): string {
  return `${clusterPrefix(cluster)}config/`;
}

/** `/fan/{cluster}/config/{service}/` */
export function configPrefix(cluster: string, service: string): string {
  return `${configRoot(cluster)}${checkSegment("service", service)}/`;
}

/** `/fan/{cluster}/election/{service}/` */
export function electionPrefix(cluster: string, service: string): string {
  return `${clusterPrefix(cluster)}election/${checkSegment("service", service)}/`;
}

/** `/fan/{cluster}/ids/{name}` */
export function idKey(cluster: string, name: string): string {
  return `${clusterPrefix(cluster)}ids/${checkSegment("id name", name)}`;
}

/** `/fan/{cluster}/breakers/{service}/` */
export function breakersPrefix(cluster: string, service: string): string {
  return `${clusterPrefix(cluster)}breakers/${checkSegment("service", service)}/`;
}
