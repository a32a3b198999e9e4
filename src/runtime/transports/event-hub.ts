/**
 * `startEventHub` as `fan/runtime` exports it: the zmq event hub (`transports/zmq/hub.ts`),
 * imported on first use so that importing the runtime never loads zeromq's native module.
 */
import type { EventHub, EventHubOptions } from "./zmq/hub.js";

export type { EventHub, EventHubEndpoints, EventHubOptions } from "./zmq/hub.js";

/** Starts a zmq event hub (XSUB for publishers, XPUB for subscribers); once per cluster. */
export async function startEventHub(opts: EventHubOptions = {}): Promise<EventHub> {
  const { startEventHub: start } = await import("./zmq/hub.js");
  return start(opts);
}
