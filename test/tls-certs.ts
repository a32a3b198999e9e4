/**
 * Throwaway TLS material for the tests, made with the openssl CLI (node:crypto cannot sign
 * X.509): a self-signed certificate, or a CA with server and client certificates it signed,
 * each valid for 127.0.0.1 and localhost for two days. Files are PEM, in a temp folder that
 * `remove()` deletes.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The openssl binary (Debian's). */
export const OPENSSL = "/usr/bin/openssl";

/** True when certificates can be made here. */
export const opensslAvailable = existsSync(OPENSSL);

/** A certificate and its key, as file paths. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

const SAN = ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"];
const LEAF = [
  ...SAN,
  "-addext",
  "basicConstraints=critical,CA:FALSE",
  "-addext",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "-addext",
  "extendedKeyUsage=serverAuth,clientAuth",
];

function req(dir: string, name: string, cn: string, extra: readonly string[]): CertFiles {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    OPENSSL,
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-keyout",
      key,
      "-out",
      cert,
      "-subj",
      `/CN=${cn}`,
    ].concat(extra),
    { stdio: "ignore" },
  );
  // Brokers that drop privileges (RabbitMQ runs as its own user) must read the key too.
  chmodSync(key, 0o644);
  return { cert, key };
}

/** A self-signed certificate for `cn` (its own CA: openssl's default extensions), valid for 127.0.0.1 and localhost. */
export function selfSigned(dir: string, name: string, cn: string): CertFiles {
  return req(dir, name, cn, SAN);
}

/** What a private broker serves TLS with: its certificate and key, the CA of its clients, and whether it asks them for a certificate. */
export interface ServerTls extends CertFiles {
  readonly ca: string;
  readonly verifyClients: boolean;
}

/** A CA and the certificates it signed: `server` and `client` (mutual TLS); `other` is an unrelated CA. */
export interface TestPki {
  readonly dir: string;
  readonly ca: CertFiles;
  readonly server: CertFiles;
  readonly client: CertFiles;
  /** A CA that signed nothing here: trusting it instead of `ca` must fail the handshake. */
  readonly other: CertFiles;
  /** The server side of the material, for a private broker. */
  serverTls(verifyClients: boolean): ServerTls;
  /** The PEM text of a file. */
  pem(file: string): string;
  remove(): void;
}

/** Makes a CA, a server and a client certificate signed by it, and a second, unrelated CA. */
export function testPki(prefix = "fan-pki-"): TestPki {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  const caExt = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"];
  const ca = req(dir, "ca", "fan-test-ca", caExt);
  const other = req(dir, "other-ca", "fan-test-other-ca", caExt);
  const signed = ["-CA", ca.cert, "-CAkey", ca.key, ...LEAF];
  const server = req(dir, "server", "fan-test-server", signed);
  return {
    dir,
    ca,
    server,
    client: req(dir, "client", "fan-test-client", signed),
    other,
    serverTls: (verifyClients) => ({ ...server, ca: ca.cert, verifyClients }),
    pem: (file) => readFileSync(file, "utf8"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
