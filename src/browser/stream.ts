/**
 * An `EventSource` opened on a gateway stream: resolves once it is open (the gateway opens a
 * stream only after its subscription is in place, so nothing published after that is missed),
 * rejects when it cannot open. The browser reconnects a dropped stream by itself; what was
 * published while it was down is not replayed (a state stream starts again with a snapshot).
 */
import { Code, FanError } from "../runtime/errors.js";

export interface OpenStream {
  close(): void;
  /** Called when the connection drops (`reconnecting`) or comes back (`open`). */
  onStatus?: (status: "open" | "reconnecting" | "closed") => void;
}

export function openStream(url: string, onData: (data: string) => void, stream: Partial<OpenStream> = {}): Promise<OpenStream> {
  const Source = (globalThis as { EventSource?: typeof EventSource }).EventSource;
  if (Source === undefined) return Promise.reject(new FanError(Code.UNIMPLEMENTED, "this environment has no EventSource"));
  const es = new Source(url);
  const handle: OpenStream = { close: () => es.close(), ...stream };
  es.onmessage = (e: { readonly data: unknown }) => onData(String(e.data));
  return new Promise<OpenStream>((resolve, reject) => {
    let opened = false;
    es.onopen = () => {
      if (!opened) resolve(handle);
      opened = true;
      handle.onStatus?.("open");
    };
    es.onerror = () => {
      if (!opened) {
        es.close();
        reject(new FanError(Code.UNAVAILABLE, `cannot open the event stream ${url} (is the gateway up, and does it know that name?)`));
        return;
      }
      handle.onStatus?.(es.readyState === 2 ? "closed" : "reconnecting");
    };
  });
}
