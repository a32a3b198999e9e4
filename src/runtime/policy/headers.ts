/**
 * Headers a caller adds to its calls (credentials per App, per client or per call) travel in
 * every envelope and, on http, as HTTP headers: each value is checked before it is sent —
 * no CR or LF (header injection), at most 8 KiB — and names must be tokens.
 */
import { Code, FanError } from "../errors.js";

/** Headers to add to calls: fixed values, or a function called per call (e.g. a refreshed token). */
export type HeaderSource = Readonly<Record<string, string>> | (() => Readonly<Record<string, string>>);

/** The longest header value accepted, in characters. */
export const MAX_HEADER_VALUE = 8192;

const NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;
const RESERVED: ReadonlySet<string> = new Set(["deadline", "ttl", "replyTo", "shard", "attempt"]);

/** Throws INVALID_ARGUMENT naming the first header that may not be sent; returns `h`. */
export function checkHeaders(h: Readonly<Record<string, unknown>>, where: string): Readonly<Record<string, string>> {
  for (const name of Object.keys(h)) {
    const v = h[name];
    if (!NAME.test(name) || RESERVED.has(name))
      throw new FanError(Code.INVALID_ARGUMENT, `${where}: header name ${JSON.stringify(name)} may not be set`, {
        details: { header: name },
      });
    if (typeof v !== "string")
      throw new FanError(Code.INVALID_ARGUMENT, `${where}: header ${name} must be a string`, {
        details: { header: name },
      });
    if (v.length > MAX_HEADER_VALUE)
      throw new FanError(
        Code.INVALID_ARGUMENT,
        `${where}: header ${name} is ${v.length} characters long (at most ${MAX_HEADER_VALUE})`,
        { details: { header: name } },
      );
    if (v.includes("\r") || v.includes("\n") || v.includes("\0"))
      throw new FanError(Code.INVALID_ARGUMENT, `${where}: header ${name} contains CR, LF or NUL`, {
        details: { header: name },
      });
  }
  return h as Readonly<Record<string, string>>;
}

/** The headers of a source now (a function is called and its result checked). */
export function headersOf(src: HeaderSource, where: string): Readonly<Record<string, string>> {
  return typeof src === "function" ? checkHeaders(src(), where) : src;
}
