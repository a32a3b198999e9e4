import { describe, expect, it } from "vitest";
import { onAbort, unwatchAbort, watchAbort } from "../../src/runtime/transports/abort.js";

describe("shared abort listening", () => {
  it("adds one listener per signal however many calls register, and calls each once", () => {
    const ac = new AbortController();
    let added = 0;
    const add = ac.signal.addEventListener.bind(ac.signal);
    ac.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      added++;
      add(...args);
    }) as typeof ac.signal.addEventListener;
    const seen: number[] = [];
    const stops = Array.from({ length: 100 }, (_, i) => onAbort(ac.signal, () => seen.push(i)));
    stops[7]?.();
    const target = { n: 0, aborted() { this.n++; } };
    watchAbort(ac.signal, target);
    ac.abort();
    ac.abort();
    expect(added).toBe(1);
    expect(seen).toHaveLength(99);
    expect(seen).not.toContain(7);
    expect(target.n).toBe(1);
  });

  it("tells registrations on an already-aborted signal soon, unless they stop first", async () => {
    const ac = new AbortController();
    ac.abort();
    let fired = 0;
    onAbort(ac.signal, () => fired++);
    const stop = onAbort(ac.signal, () => fired++);
    stop();
    const target = { n: 0, aborted() { this.n++; } };
    const gone = { n: 0, aborted() { this.n++; } };
    watchAbort(ac.signal, target);
    watchAbort(ac.signal, gone);
    unwatchAbort(ac.signal, gone);
    expect(fired).toBe(0);
    await Promise.resolve();
    expect(fired).toBe(1);
    expect(target.n).toBe(1);
    expect(gone.n).toBe(0);
  });
});
