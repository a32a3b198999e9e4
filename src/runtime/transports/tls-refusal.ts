/**
 * TLS handshakes that failed on a certificate: the server's does not verify against the CA
 * given (or its name does not match), or the server refused ours (none given, or signed by a
 * CA it does not trust). Retrying does not fix these, so a broker connection that fails this
 * way makes callers fail at once, naming the broker and the certificate problem, instead of
 * waiting for their deadline as they do while a broker restarts. The connection itself keeps
 * trying in the background (a certificate can be replaced on the server).
 */

/** Node's verification codes and OpenSSL's alert codes of a certificate problem. */
const CODES =
  /^(?:ERR_TLS_CERT|ERR_SSL_.*(?:CERTIFICATE|UNKNOWN_CA|HANDSHAKE_FAILURE)|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/;
/** The same problems by message, for clients that rewrap the error without its code. */
const MESSAGES = /certificate|self[- ]signed|unknown ca|alert handshake failure|hostname\/ip does not match/i;

/** True when `e` (or an error it wraps) is a TLS handshake failure on a certificate. */
export function tlsRefusal(e: unknown): boolean {
  for (let err = e, depth = 0; err instanceof Error && depth < 4; err = err.cause, depth++) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === "string" && CODES.test(code)) return true;
    if (MESSAGES.test(err.message)) return true;
  }
  return false;
}

/**
 * A broker URL without its password, for messages and logs: `redis://:pass@h` and
 * `amqp://u:p@ss@h` alike (the user info ends at the last `@`; a password may hold one).
 */
export function redactUrl(url: string): string {
  const start = url.indexOf("://") + 3;
  const at = url.lastIndexOf("@");
  if (start < 3 || at < start) return url;
  const colon = url.indexOf(":", start);
  if (colon < 0 || colon > at) return url; // a user name alone is no secret
  return `${url.slice(0, colon)}:***${url.slice(at)}`;
}

/**
 * The reason of a refusal in a few words: OpenSSL's alert ("tlsv13 alert certificate required";
 * OpenSSL 3.5, in Node 24, writes "ssl/tls alert bad certificate" where 3.0 wrote "sslv3 alert
 * bad certificate") rather than its whole error line.
 */
export function tlsReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return /:([a-z0-9_/ ]*alert [a-z ]+):/i.exec(msg)?.[1] ?? msg;
}
