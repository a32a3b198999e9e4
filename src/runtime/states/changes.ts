/**
 * The async iteration of a state view or set: listens first, yields what is already held
 * (`first`), then every change as it comes, until `done()` and nothing is left queued.
 * `listen` registers the change and status listeners and returns their removal; a status
 * change only wakes the loop (so a close ends it).
 */
export async function* changes<C>(
  listen: (push: (c: C) => void, wake: () => void) => () => void,
  first: () => readonly C[],
  done: () => boolean,
): AsyncGenerator<C> {
  const queue: C[] = [];
  let wake: (() => void) | undefined;
  const off = listen(
    (c) => {
      queue.push(c);
      wake?.();
    },
    () => wake?.(),
  );
  try {
    yield* first();
    while (!done() || queue.length > 0) {
      const next = queue.shift();
      if (next !== undefined) yield next;
      else await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  } finally {
    off();
  }
}
