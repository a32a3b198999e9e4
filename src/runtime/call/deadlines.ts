/**
 * Client-side deadline enforcement without a timer per call. Pending calls go into buckets
 * of `RESOLUTION_MS` keyed by their deadline; one timer, armed for the earliest bucket, fails
 * every call of each bucket that has come due. Adding and removing a call is a Map lookup and
 * a Set operation, so the in-process call path stays cheap; precision is a few milliseconds.
 */

/** Bucket width: a call fails at most this much after its deadline (plus timer latency). */
export const RESOLUTION_MS = 2;

/** A pending call the wheel can expire; the wheel links it into its bucket (no Set, no allocation). */
export interface Expirable {
  /** Bucket key assigned by `add`. */
  bucket: number;
  /** Links of the bucket's list, owned by the wheel (declare them for a stable object shape). */
  prev?: Expirable | undefined;
  next?: Expirable | undefined;
  /** Called once when the deadline passes before `remove`. */
  expire(): void;
}

/** The calls due in one bucket: an intrusive doubly-linked list. */
class Bucket {
  head: Expirable | undefined;
  constructor(readonly key: number) {}
}

/** A min-heap of bucket keys. */
class KeyHeap {
  readonly #a: number[] = [];

  get size(): number {
    return this.#a.length;
  }

  peek(): number | undefined {
    return this.#a[0];
  }

  push(k: number): void {
    const a = this.#a;
    a.push(k);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((a[p] as number) <= k) break;
      a[i] = a[p] as number;
      i = p;
    }
    a[i] = k;
  }

  pop(): number | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && (a[r] as number) < (a[l] as number) ? r : l;
      if ((a[c] as number) >= last) break;
      a[i] = a[c] as number;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** One timer for many deadlines. */
export class DeadlineWheel {
  readonly #buckets = new Map<number, Bucket>();
  readonly #keys = new KeyHeap();
  /** The bucket of the last `add`: consecutive calls with the same timeout mostly share it. */
  #last: Bucket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Number.POSITIVE_INFINITY;
  /** Tracked items; the timer keeps the process alive only while this is above zero. */
  #pending = 0;

  /** Tracks `item` until `remove`; `expire` is called if `deadline` (epoch ms) passes first. */
  add(item: Expirable, deadline: number): void {
    const key = Math.ceil(deadline / RESOLUTION_MS);
    let b = this.#last;
    if (b === undefined || b.key !== key) {
      b = this.#buckets.get(key);
      if (b === undefined) {
        b = new Bucket(key);
        this.#buckets.set(key, b);
        this.#keys.push(key);
        if (key < this.#armedFor) this.#arm(key);
      }
      this.#last = b;
    }
    item.bucket = key;
    item.prev = undefined;
    item.next = b.head;
    if (b.head !== undefined) b.head.prev = item;
    b.head = item;
    if (this.#pending++ === 0) this.#timer?.ref();
  }

  /** Stops tracking `item` (its call settled); a no-op when it is not tracked. */
  remove(item: Expirable): void {
    const b = this.#last?.key === item.bucket ? this.#last : this.#buckets.get(item.bucket);
    if (b === undefined) return;
    if (item.prev !== undefined) item.prev.next = item.next;
    else if (b.head === item) b.head = item.next;
    else return;
    if (item.next !== undefined) item.next.prev = item.prev;
    item.prev = item.next = undefined;
    this.#released();
  }

  /**
   * One call fewer; at none the timer stops holding the process open. Unref'd at once: a
   * timer's ref and unref are a flag and a counter in Node (a call into C++ only when the
   * process-wide count crosses zero), far cheaper than the setImmediate that used to defer the
   * unref, which cost every lone call (c=1) an Immediate and one more turn of the event loop.
   */
  #released(): void {
    if (--this.#pending === 0) this.#timer?.unref();
  }

  #arm(key: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedFor = key;
    const delay = Math.max(0, key * RESOLUTION_MS - Date.now());
    this.#timer = setTimeout(() => this.#fire(), delay);
    if (this.#pending === 0) this.#timer.unref();
  }

  /** How many times the timer fired (for tests: empty buckets must not wake it). */
  get fired(): number {
    return this.#fired;
  }
  #fired = 0;

  #fire(): void {
    this.#fired++;
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    for (;;) {
      const key = this.#keys.peek();
      if (key === undefined) return;
      if (key * RESOLUTION_MS > now) {
        const next = this.#buckets.get(key);
        if (next?.head === undefined && next !== this.#last) {
          // Every call of that bucket settled: drop it rather than wake up for it. Calls made
          // one after another each open a bucket (2 ms apart), so waking for empty ones kept a
          // 500 Hz timer running for as long as calls kept coming.
          this.#keys.pop();
          this.#buckets.delete(key);
          continue;
        }
        this.#arm(key);
        return;
      }
      this.#keys.pop();
      const b = this.#buckets.get(key);
      this.#buckets.delete(key);
      if (this.#last === b) this.#last = undefined;
      let item = b?.head;
      while (item !== undefined) {
        const next = item.next;
        item.prev = item.next = undefined;
        this.#released();
        item.expire();
        item = next;
      }
    }
  }
}

/** The process-wide wheel every client shares. */
export const deadlines = new DeadlineWheel();
