/**
 * An event stream whose client stops reading: the gateway cuts it off (warn line naming the
 * stream) once more than MAX_BUFFERED bytes are queued, instead of buffering without bound.
 */
import { createServer, type ServerResponse } from "node:http";
import { connect, type AddressInfo } from "node:net";
import type { Logger } from "pino";
import { expect, it } from "vitest";
import { MAX_BUFFERED, openSse } from "../../src/gateway/sse.js";
import { until } from "../cli/helpers.js";

it("destroys a stream whose client never reads once more than 1 MiB is queued, with a warn line", async () => {
  const warned: Record<string, unknown>[] = [];
  const log = { warn: (o: Record<string, unknown>) => void warned.push(o) } as unknown as Logger;
  let res: ServerResponse | undefined;
  const server = createServer((_req, r) => {
    res = r;
    const sse = openSse(r, {}, log, "/_fan/events/a.B/c");
    const event = "x".repeat(16 * 1024);
    // 64 MiB: far more than the kernel's socket buffers take from a client that never reads.
    for (let i = 0; i < 4096 && !r.destroyed; i++) sse.send(event);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const socket = connect((server.address() as AddressInfo).port, "127.0.0.1");
  try {
    socket.write("GET /_fan/events/a.B/c HTTP/1.1\r\nhost: x\r\n\r\n");
    socket.pause(); // a stalled EventSource: never reads
    await until("the server answered", () => res !== undefined, 10_000);
    await until("the stalled stream is destroyed", () => res?.destroyed === true, 10_000);
    expect(warned).toEqual([expect.objectContaining({ stream: "/_fan/events/a.B/c", buffered: expect.any(Number) })]);
    expect(warned[0]?.buffered as number).toBeGreaterThan(MAX_BUFFERED);
  } finally {
    socket.destroy();
    await new Promise((r) => server.close(r));
  }
}, 30_000);
