/**
 * A floor for `bench/gateway.ts`, in a process of its own: `tcp` echoes every chunk back (one
 * loopback round trip to another process, nothing else); `http` is a bare `node:http` server
 * that reads the body and answers the reply the gateway answers for `Till.peek` (the HTTP
 * exchange with no gateway work behind it). Prints `listening on <url>` once ready.
 */
import { createServer } from "node:http";
import { createServer as createTcpServer, type AddressInfo } from "node:net";

const kind = process.argv[2];
const reply = JSON.stringify({ total: 1, by: "bench" });
if (kind === "tcp") {
  const server = createTcpServer((c) => {
    c.setNoDelay(true);
    c.on("data", (d) => c.write(d));
  });
  server.listen(0, "127.0.0.1", () =>
    console.log(`listening on tcp://127.0.0.1:${(server.address() as AddressInfo).port}`),
  );
} else if (kind === "http") {
  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    req.on("data", () => undefined);
    req.on("end", () => {
      res
        .writeHead(200, {
          "content-type": "application/json; charset=utf-8",
          "content-length": String(Buffer.byteLength(reply)),
        })
        .end(reply);
    });
  });
  server.listen(0, "127.0.0.1", () =>
    console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`),
  );
} else {
  console.error("usage: floor.ts tcp|http");
  process.exit(2);
}
