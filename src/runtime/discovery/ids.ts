/**
 * Unique ids backed by the registry: every write to the store gets a new store revision,
 * unique and increasing across every process sharing the registry (etcd's global revision).
 * `nextId` writes `/fan/{cluster}/ids/{name}` and returns the write's revision.
 */
import { idKey } from "./keys.js";
import type { Registry } from "./registry.js";

/**
 * A new id, unique across processes sharing the registry and greater than every id handed out
 * before it (for any name). Not dense: other writes to the store skip numbers.
 */
export async function nextId(registry: Registry, name: string, cluster = "default"): Promise<bigint> {
  const key = idKey(cluster, name);
  const rev = await registry.put(key, "");
  if (rev === undefined) throw new Error(`nextId ${name}: the registry returned no revision`);
  return BigInt(rev);
}
