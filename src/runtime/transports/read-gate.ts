/**
 * When a stream consumer (redis streams, JetStream pulls) reads again while `prefetch` messages
 * may be in its handlers: once a batch's worth of slots is free (half the prefetch, at most
 * READ_BATCH), so one read asks for many messages instead of one per freed slot; and, while
 * fewer are free, SLOW_SLOT_MS after a slot freed anyway, so slow or stuck handlers holding most
 * of the prefetch never stop the others (they read one slot at a time, as before batching).
 */

/** Free slots that make a read worth it at once. */
const READ_BATCH = 8;
/** How long a read waits for more free slots before taking the ones there are. */
const SLOW_SLOT_MS = 10;

export class ReadGate {
  #wake: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #enough: number;

  constructor(
    private readonly prefetch: number,
    /** Messages in handlers now. */
    private readonly busy: () => number,
  ) {
    this.#enough = Math.min(Math.max(1, Math.floor(prefetch / 2)), READ_BATCH);
  }

  /** Resolves once the consumer may read again (see above). */
  wait(): Promise<void> {
    if (this.prefetch - this.busy() >= this.#enough) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#arm();
    });
  }

  /** A handler's message was settled: its slot is free. */
  released(): void {
    if (this.#wake === undefined) return;
    if (this.prefetch - this.busy() >= this.#enough) this.open();
    else this.#arm();
  }

  /** Lets a waiting read go now (a slot freed long enough ago, or the consumer stops). */
  open(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #arm(): void {
    if (this.#timer !== undefined || this.busy() >= this.prefetch) return;
    this.#timer = setTimeout(() => this.open(), SLOW_SLOT_MS);
    this.#timer.unref();
  }
}
