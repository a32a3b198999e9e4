/**
 * The zmq transport's client side: one DEALER per endpoint, many calls in flight on it,
 * matched to replies by id. A DEALER never waits for a reply before sending the next request,
 * so a lost reply costs one call its deadline, never the socket.
 *
 * Every send is bounded: a call waits for its reply until its deadline (DEADLINE_EXCEEDED), a
 * send waits at most `sendTimeoutMs` for a first connection and fails at once while the
 * connection is known down (UNAVAILABLE, not delivered: connection.ts), a lost connection
 * fails what is in flight on it (UNAVAILABLE), an abort sends a cancel to the server and
 * rejects at once (CANCELLED). Pushes wait for an ack and are sent again after a nack.
 */
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import type { Envelope, SendOptions } from "../transport.js";
import { malformedReply, nackError, pushUntilAcked } from "../acked-push.js";
import { decodeFrameReply } from "../replies.js";
import { Connection } from "./connection.js";
import { Op } from "./frames.js";

/** Client-side options of the zmq transport. */
export interface ZmqClientOptions {
  /** How long a request waits for a connection (or a full send queue) before UNAVAILABLE; default 2 s. */
  readonly sendTimeoutMs?: number;
  /** A connection that stays down this long is closed (and reopened on next use); default 30 s. */
  readonly idleCloseMs?: number;
  /** Attempts of a push the server did not acknowledge; default 5. */
  readonly pushAttempts?: number;
  /** First delay between push attempts (doubling, at most 1 s); default 50 ms. */
  readonly pushBackoffMs?: number;
}

/** DEALERs per endpoint and the call/push protocol over them. */
export class ZmqClient {
  private readonly connections = new Map<string, Connection>();
  private closed = false;

  constructor(
    private readonly opts: ZmqClientOptions,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {}

  private connection(endpoint: string): Connection {
    if (this.closed) throw new FanError(Code.UNAVAILABLE, "zmq transport is closed");
    let c = this.connections.get(endpoint);
    if (c === undefined) {
      if (!endpoint.startsWith("tcp://") && !endpoint.startsWith("ipc://") && !endpoint.startsWith("inproc://")) {
        throw new FanError(Code.INVALID_ARGUMENT, `not a zmq endpoint: ${JSON.stringify(endpoint)}`);
      }
      const conn = new Connection(endpoint, this.opts, this.log, this.maxBytes, () => {
        if (this.connections.get(endpoint) === conn) this.connections.delete(endpoint);
      });
      this.connections.set(endpoint, conn);
      c = conn;
    }
    return c;
  }

  /** False while the connection to `endpoint` is known down (dropped or refused, not yet back). */
  reachable(endpoint: string): boolean {
    return this.connections.get(endpoint)?.reachable ?? true;
  }

  /** While the first connection to `endpoint` is being made: the error of a request waiting for it at its deadline. */
  stalled(endpoint: string): FanError | undefined {
    return this.connections.get(endpoint)?.stalled();
  }

  /** Sends a call; resolves with the reply or error envelope. */
  async call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    const answer = await this.connection(endpoint).request(Op.CALL, env, opts);
    const reply = decodeFrameReply(answer.body, this.maxBytes, env.service);
    if (FanError.is(reply)) throw malformedReply(reply, endpoint);
    return reply;
  }

  /** Sends a push; resolves on ack, sends again after a nack (attempt + 1) until the attempts run out. */
  push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    return pushUntilAcked(
      env,
      opts,
      this.opts,
      async (sent) => {
        const answer = await this.connection(endpoint).request(Op.PUSH, sent, opts);
        return answer.op === Op.ACK ? undefined : nackError(answer.body);
      },
      this.log,
      "zmq",
    );
  }

  /** Closes every DEALER (linger 0) and fails what is pending. */
  close(): void {
    this.closed = true;
    for (const c of this.connections.values()) c.close();
    this.connections.clear();
  }
}
