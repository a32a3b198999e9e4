/**
 * The error of a transport that carries no events (http, tcp): `publish` and `subscribe` on it
 * fail with UNIMPLEMENTED, naming what was asked and the transports that carry events.
 */
import { Code, FanError } from "../errors.js";

export function noEvents(transport: string, what: string): FanError {
  return new FanError(
    Code.UNIMPLEMENTED,
    `${transport} carries no events (${what}); events need a broker transport: serve or relay them through amqp, redis, nats or zmq`,
  );
}
