/**
 * A side look at why a NATS server does not let us in, for the one case nats.js cannot tell:
 * a server that wants a client certificate we do not have. With TLS 1.3 our side of the
 * handshake completes before the server checks our certificate; the server's alert then closes
 * a connection nats.js already counts as made, and nats.js waits for its PONG until its connect
 * `timeout` (20 s by default) and reports only "timeout" (docs/decisions.md, "nats: a side
 * probe tells a refused client certificate"). The probe repeats what nats.js does up to that
 * point (read INFO, upgrade to TLS with the same options) and listens briefly for the alert.
 */
import { readFile } from "node:fs/promises";
import { connect as tcp, isIP, type Socket } from "node:net";
import { connect as tls, type ConnectionOptions } from "node:tls";
import type { NodeConnectionOptions } from "@nats-io/transport-node";
import { tlsReason, tlsRefusal } from "../tls-refusal.js";

/** How long the probe listens after its side of the handshake for the server's alert (one round trip). */
const LISTEN_MS = 1_000;

/**
 * Why `server` (`host:port` or `nats://host:port`) refuses our TLS handshake on a certificate,
 * in tlsReason's few words; undefined when it accepts, does not answer within `ms`, fails
 * otherwise, or speaks no TLS. Never throws.
 */
export async function tlsProbe(
  server: string,
  options: NodeConnectionOptions["tls"],
  ms: number,
): Promise<string | undefined> {
  if (options === null) return undefined;
  let secure: ConnectionOptions;
  let u: URL;
  try {
    secure = await tlsOptions(options ?? {});
    u = new URL(server.includes("://") ? server : `nats://${server}`);
  } catch {
    return undefined; // nats.js fails on the same files and URL, and says so itself
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(u.port || 4222);
  // nats.js sends no name for an IP (RFC 6066); the certificate is still checked against `host`.
  const name = isIP(host) === 0 ? { servername: host } : {};
  return new Promise((resolve) => {
    let socket: Socket | undefined;
    let settled = false;
    const finish = (e?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      resolve(e !== undefined && tlsRefusal(e) ? tlsReason(e) : undefined);
    };
    // Advice only: a probe never keeps the process alive.
    const timer = setTimeout(finish, ms).unref();
    const upgrade = (raw?: Socket): void => {
      let s: Socket;
      try {
        s = tls({
          host,
          port,
          ...name,
          rejectUnauthorized: true,
          ...secure,
          ...(raw === undefined ? {} : { socket: raw }),
        });
      } catch (e) {
        finish(e); // a key or certificate Node cannot read
        return;
      }
      socket = s.unref();
      s.once("error", finish);
      s.once("close", () => finish());
      s.once("secureConnect", () => {
        s.once("data", () => finish()); // the server spoke: it let us in
        setTimeout(finish, LISTEN_MS).unref();
      });
    };
    if (options?.handshakeFirst === true) {
      upgrade();
      return;
    }
    const raw = tcp(port, host).unref();
    socket = raw;
    let head = "";
    const closed = (): void => finish();
    const onData = (b: Buffer): void => {
      head += b.toString("latin1");
      const end = head.indexOf("\r\n");
      if (end < 0) return;
      raw.off("data", onData).off("error", finish).off("close", closed).pause();
      if (wantsTls(head.slice(0, end))) upgrade(raw);
      else finish();
    };
    raw.on("data", onData).once("error", finish).once("close", closed);
  });
}

/** Whether nats.js upgrades to TLS after this INFO line: the server requires TLS, or offers it (a client refusing it returned earlier). */
function wantsTls(line: string): boolean {
  const info = /^INFO\s+(\{.*\})/i.exec(line)?.[1];
  if (info === undefined) return false; // not a NATS server
  try {
    const o = JSON.parse(info) as { tls_required?: boolean; tls_available?: boolean };
    return o.tls_required === true || o.tls_available === true;
  } catch {
    return false;
  }
}

/** Node's options from nats.js's (`certFile`, `keyFile`, `caFile` read as nats.js reads them). */
async function tlsOptions(o: NonNullable<NodeConnectionOptions["tls"]>): Promise<ConnectionOptions> {
  const { handshakeFirst: _, certFile, keyFile, caFile, ...rest } = o;
  return {
    ...rest,
    ...(certFile === undefined ? {} : { cert: await readFile(certFile) }),
    ...(keyFile === undefined ? {} : { key: await readFile(keyFile) }),
    ...(caFile === undefined ? {} : { ca: [await readFile(caFile)] }),
  };
}
