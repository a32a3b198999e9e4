/**
 * TLS of the fanc commands that connect to services (`--tls-ca`, `--tls-cert`, `--tls-key`,
 * `--tls-insecure`): files read once, then handed to each transport the way its options take
 * them. The material applies where the address asks for TLS: `https://` endpoints (http),
 * `rediss://` (redis), `amqps://` (amqp), any nats server when a flag is given (nats.js then
 * requires TLS), and `etcd://https://...` (discovery). zmq has no TLS.
 */
import { readFileSync } from "node:fs";
import type { TransportsConfig } from "../runtime/app/infra.js";
import type { EtcdRegistryOptions } from "../runtime/discovery/etcd.js";
import { type Io, processIo } from "./io.js";
import { UsageError } from "./ls.js";

/** The TLS files and switch, read. */
export interface CliTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Accept a server certificate that does not verify (tests, a self-signed dev endpoint). */
  readonly insecure: boolean;
}

/** The flags as `parseArgs` returns them (`TLS_OPTIONS` in ls.ts). */
export interface TlsFlags {
  readonly "tls-ca"?: string | undefined;
  readonly "tls-cert"?: string | undefined;
  readonly "tls-key"?: string | undefined;
  readonly "tls-insecure"?: boolean | undefined;
}

/** The help lines of the flags. */
export const TLS_USAGE = `  --tls-ca <file>      PEM CA the servers' certificates must chain to (https, rediss, amqps, nats tls, etcd https)
  --tls-cert <file>    PEM client certificate, for servers that ask for one (with --tls-key)
  --tls-key <file>     PEM key of --tls-cert
  --tls-insecure       accept server certificates that do not verify (not etcd's: refused there
                       without --tls-ca, and said to be ignored with it)`;

function read(flag: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`${flag}: cannot read ${file}: ${(e as Error).message}`);
  }
}

/** What cliTls made of each flags object: one CliTls per command, whatever the number of calls. */
const made = new WeakMap<TlsFlags, CliTls | undefined>();

/**
 * The TLS flags read (undefined when none is given); a missing file or a lone cert or key is a
 * UsageError. The same flags object gives the same CliTls, so a command that opens etcd twice
 * (a registry, then an App) says once that `--tls-insecure` does not apply there.
 */
export function cliTls(flags: TlsFlags): CliTls | undefined {
  if (made.has(flags)) return made.get(flags);
  const tls = readTls(flags);
  made.set(flags, tls);
  return tls;
}

function readTls(flags: TlsFlags): CliTls | undefined {
  const cert = flags["tls-cert"];
  const key = flags["tls-key"];
  if ((cert === undefined) !== (key === undefined))
    throw new UsageError(
      `--tls-cert and --tls-key go together (got only ${cert === undefined ? "--tls-key" : "--tls-cert"})`,
    );
  const ca = flags["tls-ca"];
  const insecure = flags["tls-insecure"] === true;
  if (ca === undefined && cert === undefined && !insecure) return undefined;
  const out: { ca?: string; cert?: string; key?: string; insecure: boolean } = { insecure };
  const caPem = read("--tls-ca", ca);
  if (caPem !== undefined) out.ca = caPem;
  const certPem = read("--tls-cert", cert);
  if (certPem !== undefined) out.cert = certPem;
  const keyPem = read("--tls-key", key);
  if (keyPem !== undefined) out.key = keyPem;
  return out;
}

/** node:tls options of the material (the shape http, redis and amqp take). */
function nodeTls(tls: CliTls): Record<string, unknown> {
  return {
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
    ...(tls.insecure ? { rejectUnauthorized: false } : {}),
  };
}

/** `config` with the TLS material added to each transport's options (unchanged without TLS). */
export function withTls(config: TransportsConfig, tls: CliTls | undefined): TransportsConfig {
  if (tls === undefined) return config;
  const out: Record<string, unknown> = { ...config };
  const o = (name: string): Record<string, unknown> => (out[name] ?? {}) as Record<string, unknown>;
  const node = nodeTls(tls);
  if (out.http !== undefined) out.http = { ...o("http"), clientTls: node };
  const redisUrl = o("redis").url;
  if (typeof redisUrl === "string" && redisUrl.startsWith("rediss://"))
    out.redis = { ...o("redis"), redis: { tls: node } };
  if (out.amqp !== undefined) out.amqp = { ...o("amqp"), socketOptions: node };
  if (out.nats !== undefined) out.nats = { ...o("nats"), nats: { tls: node } };
  return out as TransportsConfig;
}

/** The CliTls whose `--tls-insecure` was already said not to apply to etcd (a command may open etcd twice). */
const toldInsecure = new WeakSet<CliTls>();

/**
 * The etcd options of a discovery spec: TLS when the spec names `https://` hosts. etcd's gRPC
 * client has no way to skip verification, so `--tls-insecure` is refused there without
 * `--tls-ca`, and with it is said (once, on `io`) to apply to the other servers only.
 */
export function etcdTls(spec: string, tls: CliTls | undefined, io: Pick<Io, "err"> = processIo): EtcdRegistryOptions {
  if (tls === undefined || !spec.includes("https://")) return {};
  if (tls.insecure && tls.ca === undefined)
    throw new UsageError(`--tls-insecure cannot apply to etcd over https (${spec}): give its CA with --tls-ca`);
  if (tls.insecure && !toldInsecure.has(tls)) {
    toldInsecure.add(tls);
    io.err(
      `fanc: warning: --tls-insecure does not apply to etcd (${spec}): its certificate is verified against --tls-ca`,
    );
  }
  return {
    tls: {
      ...(tls.ca === undefined ? {} : { ca: tls.ca }),
      ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
    },
  };
}
