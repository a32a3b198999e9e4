/**
 * One sender per zeromq socket. zeromq.js allows a single blocking `send` at a time, so sends
 * queue here in order; each waits at most until its own deadline (a send still queued after
 * it is skipped) and at most `sendTimeoutMs` on the socket (a peer that is not connected).
 */
import type { Writable } from "zeromq";
import { Code, FanError } from "../../errors.js";

interface Queued {
  readonly frames: Array<Buffer | string>;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** A FIFO sender over one writable socket. */
export class Writer {
  private readonly queue: Queued[] = [];
  private busy = false;

  constructor(
    private readonly socket: Writable<Array<Buffer | string>>,
    private readonly what: string,
  ) {}

  /** Queues `frames`; resolves once zeromq took them, rejects with UNAVAILABLE or DEADLINE_EXCEEDED. */
  send(frames: Array<Buffer | string>, deadline = Number.POSITIVE_INFINITY): Promise<void> {
    if (!this.busy) {
      // Nothing queued or in progress: hand the frames to zeromq at once (no queue entry, no
      // extra promise); whatever is queued meanwhile is drained once this send settles.
      if (Date.now() >= deadline)
        return Promise.reject(
          new FanError(Code.DEADLINE_EXCEEDED, `${this.what}: deadline passed while waiting to send`),
        );
      this.busy = true;
      try {
        return this.socket.send(frames).then(this.sent, this.notSent);
      } catch (e) {
        this.busy = false;
        return Promise.reject(mapSendError(e, this.what));
      }
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ frames, deadline, resolve, reject });
      if (!this.busy) void this.drain();
    });
  }

  private readonly sent = (): void => {
    this.busy = false;
    if (this.queue.length > 0) void this.drain();
  };

  private readonly notSent = (e: unknown): never => {
    this.busy = false;
    if (this.queue.length > 0) void this.drain();
    throw mapSendError(e, this.what);
  };

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      for (let item = this.queue.shift(); item !== undefined; item = this.queue.shift()) {
        if (Date.now() >= item.deadline) {
          item.reject(new FanError(Code.DEADLINE_EXCEEDED, `${this.what}: deadline passed while waiting to send`));
          continue;
        }
        try {
          await this.socket.send(item.frames);
          item.resolve();
        } catch (e) {
          item.reject(mapSendError(e, this.what));
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** Fails everything still queued. */
  fail(err: FanError): void {
    for (let item = this.queue.shift(); item !== undefined; item = this.queue.shift()) item.reject(err);
  }
}

/** EAGAIN (send timed out: no peer) and a closed socket are UNAVAILABLE. */
function mapSendError(e: unknown, what: string): FanError {
  const code = (e as { code?: string }).code;
  const reason = code === "EAGAIN" ? "no connected peer took the message in time" : (e as Error).message;
  return new FanError(Code.UNAVAILABLE, `${what}: ${reason}`, { cause: e });
}
