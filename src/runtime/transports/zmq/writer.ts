/**
 * One sender per zeromq socket. zeromq.js allows a single blocking `send` at a time, so sends
 * queue here in order; each waits at most until its own deadline (a send still queued after
 * it is skipped) and at most `sendTimeoutMs` on the socket (a peer that is not connected).
 *
 * With batching on (the DEALER's `[head, body]` pairs), the first send of a turn goes to
 * zeromq at once (no added latency for a lone request); the sends queued in the rest of the
 * turn (until the microtask queue drains: `process.nextTick`), or while a send blocks, go out
 * together as one multipart message of several pairs (frames.ts), at most `MAX_BATCH` pairs
 * and `batchBytes` in all: one native call for many messages instead of one each.
 *
 * A send may give a function instead of frames, called once when the writer takes the send
 * (at once when nothing is queued): the event publisher builds its messages then, from the
 * events still within their own deadlines (events.ts).
 */
import type { Writable } from "zeromq";
import { Code, FanError } from "../../errors.js";
import { frameBound, MAX_BATCH } from "./frames.js";

type Frames = Array<Buffer | string>;

/**
 * Builds a message's frames at the moment it is sent (`now`: the writer's clock); undefined
 * when nothing is left to send (the send resolves), a throw fails the send.
 */
export type BuildFrames = (now: number) => Frames | undefined;

const NO_FRAMES: Frames = [];

interface Queued {
  /** The frames; built from `build` when the writer takes the item. */
  frames: Frames;
  build: BuildFrames | undefined;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** A FIFO sender over one writable socket. */
export class Writer {
  private readonly queue: Queued[] = [];
  private busy = false;
  /** A send went out directly in this event-loop turn: later ones wait for its end and batch. */
  private turn = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: Writable<Array<Buffer | string>>,
    private readonly what: string,
    /** Bound on the bytes of one batch; 0: never batch. */
    private readonly batchBytes = 0,
  ) {}

  /**
   * Queues `out` (frames, or a function building them when sent); resolves once zeromq took
   * them, rejects with UNAVAILABLE or DEADLINE_EXCEEDED (or what the function threw).
   */
  send(out: Frames | BuildFrames, deadline = Number.POSITIVE_INFINITY): Promise<void> {
    if (!this.busy && !this.turn) {
      // Nothing queued or in progress: hand the frames to zeromq at once (no queue entry, no
      // extra promise); whatever is queued meanwhile is drained once this send settles.
      const now = Date.now();
      if (now >= deadline)
        return Promise.reject(
          new FanError(Code.DEADLINE_EXCEEDED, `${this.what}: deadline passed while waiting to send`),
        );
      let frames: Frames | undefined;
      if (typeof out === "function") {
        try {
          frames = out(now);
        } catch (e) {
          return Promise.reject(e);
        }
        if (frames === undefined) return Promise.resolve();
      } else frames = out;
      this.busy = true;
      if (this.batchBytes > 0) {
        this.turn = true;
        process.nextTick(this.endTurn);
      }
      try {
        return this.socket.send(frames).then(this.sent, this.notSent);
      } catch (e) {
        this.busy = false;
        return Promise.reject(mapSendError(e, this.what));
      }
    }
    return new Promise((resolve, reject) => {
      if (typeof out === "function") this.queue.push({ frames: NO_FRAMES, build: out, deadline, resolve, reject });
      else this.queue.push({ frames: out, build: undefined, deadline, resolve, reject });
      if (!this.busy && !this.turn) void this.drain();
    });
  }

  private readonly endTurn = (): void => {
    this.turn = false;
    if (!this.busy && this.queue.length > 0) void this.drain();
  };

  private readonly sent = (): void => {
    this.busy = false;
    if (!this.turn && this.queue.length > 0) void this.drain();
    else this.checkIdle();
  };

  private readonly notSent = (e: unknown): never => {
    this.busy = false;
    if (!this.turn && this.queue.length > 0) void this.drain();
    else this.checkIdle();
    throw mapSendError(e, this.what);
  };

  /** Resolves once nothing is queued or being sent (or after `ms`). */
  idle(ms: number): Promise<void> {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private checkIdle(): void {
    if (this.busy || this.queue.length > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.take();
        if (batch.length === 0) continue;
        let frames = (batch[0] as Queued).frames;
        if (batch.length > 1) {
          frames = [];
          for (const item of batch) for (const f of item.frames) frames.push(f);
        }
        try {
          await this.socket.send(frames);
          for (const item of batch) item.resolve();
        } catch (e) {
          const err = mapSendError(e, this.what);
          for (const item of batch) item.reject(err);
        }
      }
    } finally {
      this.busy = false;
      this.checkIdle();
    }
  }

  /** The next items to send together (one unless batching), failing those past their deadline. */
  private take(): Queued[] {
    const out: Queued[] = [];
    const now = Date.now();
    let bytes = 0;
    while (this.queue.length > 0) {
      const item = this.queue[0] as Queued;
      if (now >= item.deadline) {
        this.queue.shift();
        item.reject(new FanError(Code.DEADLINE_EXCEEDED, `${this.what}: deadline passed while waiting to send`));
        continue;
      }
      // Before building: a message built now is one sent now, not one send later.
      if (out.length > 0 && this.batchBytes === 0) break;
      if (item.build !== undefined) {
        let frames: Frames | undefined;
        try {
          frames = item.build(now);
        } catch (e) {
          this.queue.shift();
          item.reject(e);
          continue;
        }
        item.build = undefined;
        if (frames === undefined) {
          this.queue.shift();
          item.resolve();
          continue;
        }
        item.frames = frames;
      }
      let size = 0;
      for (const f of item.frames) size += frameBound(f);
      if (out.length > 0 && (out.length >= MAX_BATCH || bytes + size > this.batchBytes)) break;
      this.queue.shift();
      out.push(item);
      bytes += size;
    }
    return out;
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
