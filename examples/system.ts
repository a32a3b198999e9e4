/**
 * `npm run example -- --discovery etcd://127.0.0.1:2379 --transport redis`: the example
 * system as separate processes, one per service (examples/serve.ts), on real brokers and
 * registered in etcd, so `fanc ls`, `fanc call`, `fanc watch` and `fanc bench` can be tried
 * against it. Ctrl-C (SIGINT), SIGTERM, SIGHUP (the terminal closed) or SIGQUIT stops every
 * service gracefully, then exits 0; a launcher that is SIGKILLed leaves no service running
 * either: each stops itself within a second (src/cli/child-guard.ts).
 */
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { onStopSignals, spawnGuarded } from "../src/cli/child-guard.js";

const SERVICES = ["IntegrationApi", "PublicWines", "Lightspeed", "LightspeedSync", "Exchange"];
const TRANSPORTS = ["redis", "amqp", "http"];

const { values } = parseArgs({
  options: {
    discovery: { type: "string" },
    transport: { type: "string" },
    cluster: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(`usage: npm run example -- [--discovery etcd://host:port] [--transport redis|amqp|http] [--cluster name]

Starts each example service in a process of its own, served on --transport (default redis) where
the service allows it, and on http, redis and amqp otherwise; discovery is etcd (default
$FAN_DISCOVERY or etcd://127.0.0.1:2379), cluster $FAN_CLUSTER or "dev". Ctrl-C stops them.`);
  process.exit(0);
}
const discovery = values.discovery ?? process.env.FAN_DISCOVERY ?? "etcd://127.0.0.1:2379";
const transport = values.transport ?? "redis";
const cluster = values.cluster ?? process.env.FAN_CLUSTER ?? "dev";
if (!discovery.startsWith("etcd://")) {
  console.error(
    `--discovery must be etcd://host:port (separate processes find each other through etcd), got ${discovery}`,
  );
  process.exit(2);
}
if (!TRANSPORTS.includes(transport)) {
  console.error(
    `--transport must be one of ${TRANSPORTS.join(", ")}, got ${transport} (zmq needs an event hub: not in this launcher)`,
  );
  process.exit(2);
}
// Every process lists the transports in the same order, the asked one first: services that
// allow it are reached over it, and publishers and subscribers pick the same event transport.
const order = [transport, ...TRANSPORTS.filter((t) => t !== transport)].join(",");
const script = fileURLToPath(new URL("./serve.ts", import.meta.url));
const children = new Map<string, ChildProcess>();
let stopping = false;

const started = SERVICES.map(
  (name) =>
    new Promise<void>((resolve, reject) => {
      // Own process groups: Ctrl-C reaches this launcher only, which stops each service once;
      // a service whose launcher is gone (SIGKILLed) stops itself (src/cli/child-guard.ts).
      const child = spawnGuarded([...process.execArgv, script, name], {
        env: { ...process.env, FAN_DISCOVERY: discovery, FAN_CLUSTER: cluster, FAN_TRANSPORTS: order },
        stdio: ["ignore", "pipe", "inherit"],
      });
      children.set(name, child);
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        if (line.startsWith('{"ready"')) {
          const o = JSON.parse(line) as { service: string; pid: number };
          console.log(`  ✓ ${o.service} (pid ${o.pid})`);
          resolve();
        } else console.log(`  [${name}] ${line}`);
      });
      child.once("exit", (code, signal) => {
        children.delete(name);
        if (!stopping) {
          console.error(`  ✗ ${name} exited (${signal ?? `code ${code}`})`);
          reject(new Error(`${name} exited`));
        }
      });
    }),
);

async function stop(code: number): Promise<void> {
  if (stopping) return; // a second Ctrl-C (or tsx relaying the first) changes nothing: they are draining
  stopping = true;
  const exits = [...children.values()].map((c) => new Promise((r) => c.once("exit", r)));
  for (const c of children.values()) c.kill("SIGTERM");
  await Promise.all(exits);
  console.log("example: every service stopped");
  process.exit(code);
}
onStopSignals(() => void stop(0)); // SIGHUP too: a closed terminal stops the services

console.log(
  `example: starting ${SERVICES.length} services, one process each (${discovery}, cluster "${cluster}", ${transport} first)`,
);
try {
  await Promise.all(started);
} catch {
  await stop(1);
}
const env = cluster === "dev" ? "" : `FAN_CLUSTER=${cluster} `;
const disc = discovery === "etcd://127.0.0.1:2379" ? "" : `FAN_DISCOVERY=${discovery} `;
console.log(`example: all ${SERVICES.length} services running. Try, in another shell:
  ${env}${disc}npx fanc ls
  ${env}${disc}npx fanc call PublicWines.list '{"storeId":"s1"}'
  ${env}${disc}npx fanc bench IntegrationApi.ping --duration 3s
Ctrl-C stops them.`);
