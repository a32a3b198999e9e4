/**
 * Counters an App keeps (read them with `app.counters`): what was dropped, expired or failed.
 * Plain numbers, so the hot path increments a field and nothing else.
 */

/** Counters of one App. */
export interface Counters {
  /** Calls refused because their deadline had passed before they started (on arrival, or waiting in a transport). */
  callsExpired: number;
  /** Replies a handler returned that failed validation (sent as INTERNAL). */
  badReplies: number;
  /** Pushes dropped unprocessed because their `@ttl` had expired. */
  pushesExpired: number;
  /** Pushes dropped because they could not be decoded or had no handler. */
  pushesDropped: number;
  /** Events dropped because they could not be decoded or had no handler. */
  eventsDropped: number;
  /** Push and event deliveries whose handler failed (they are delivered again). */
  deliveriesFailed: number;
  /** Calls a served instance refused at its in-flight bound (load shedding). */
  callsShed: number;
  /** Pushes acknowledged without running the handler: their id was handled within the dedupe window. */
  pushesDuplicate: number;
}

/** A zeroed set of counters. */
export function newCounters(): Counters {
  return {
    callsExpired: 0,
    badReplies: 0,
    pushesExpired: 0,
    pushesDropped: 0,
    eventsDropped: 0,
    deliveriesFailed: 0,
    callsShed: 0,
    pushesDuplicate: 0,
  };
}
