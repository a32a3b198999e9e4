/**
 * The files `fanc new service` and `fanc init` write: a `.fan` stub with one member of each
 * kind, its handler, a `main.ts` that serves it, a vitest test with the test kit and the
 * generated mock, and the project files. Every text here must compile under the project's
 * strict tsconfig and its test must pass unchanged (test/package/new-project.test.ts).
 */

/** What the templates are filled with. */
export interface ServiceNames {
  /** The service: `Greeter`. */
  readonly name: string;
  /** The IDL package: `demo.greeter`. */
  readonly pkg: string;
  /** The handler's module, kebab case: `greeter`. */
  readonly file: string;
  /** The transport main.ts serves on. */
  readonly transport: "redis" | "amqp" | "nats" | "zmq" | "http" | "tcp";
}

/** The generated module of the package, relative to the project: `generated/demo/greeter.js`. */
export const generatedModule = (n: ServiceNames): string => `generated/${n.pkg.split(".").join("/")}.js`;

/** `idl/demo/greeter.fan`. */
export const fanPath = (n: ServiceNames): string => `idl/${n.pkg.split(".").join("/")}.fan`;

export function fanStub(n: ServiceNames): string {
  return `package ${n.pkg}

version "0.1.0"

/// What hello answers.
struct Greeting { message: string, count: int }

/// A name hello will not greet.
error NameRefused @code(INVALID_ARGUMENT) { who: string, reason: string }

/// ${n.name}: replace these members with your own, then \`npx fanc compile idl/\`.
service ${n.name} {
  /// Greets someone; refuses a blank name.
  rpc hello(name: string @maxLength(100)): Greeting throws NameRefused
  /// Forgets every count (a push: acknowledged once handled, retried on failure).
  push reset()
  /// Published after each greeting.
  event greeted(name: string, count: int)
  /// How often each name was greeted, replicated to every watcher.
  state counts: map<string, int> @delta
}
`;
}

export function handler(n: ServiceNames): string {
  return `import type { CallContext, LifecycleContext } from "fan/runtime";
import {
  type Greeting,
  type ${n.name}Events,
  type ${n.name}Handler,
  type ${n.name}States,
  NameRefused,
} from "../${generatedModule(n)}";

// The contexts typed by the IDL: no config block, its events, its states (\`ctx.states.counts\`).
type Ctx = CallContext<Record<string, never>, ${n.name}Events, ${n.name}States>;
type StartCtx = LifecycleContext<Record<string, never>, ${n.name}Events, ${n.name}States>;

/** ${n.name}: one method per rpc and push of the IDL (a missing one is a type error). */
export class ${n.name}Service implements ${n.name}Handler {
  private readonly counts = new Map<string, number>();

  /**
   * Runs before the service is registered: give the state its first value, unless it has one
   * (with \`createApp({ states: { persist } })\` the saved value is resumed before this runs).
   */
  start(ctx: StartCtx): void {
    if (ctx.states.counts.value() === undefined) ctx.states.counts.set({});
  }

  async hello({ name }: { name: string }, ctx: Ctx): Promise<Greeting> {
    if (name.trim() === "") throw new NameRefused({ who: name, reason: "blank" }); // typed on the client
    const count = (this.counts.get(name) ?? 0) + 1;
    this.counts.set(name, count);
    ctx.states.counts.patch({ [name]: count }); // watchers get the patch
    await ctx.emit.greeted({ name, count });
    ctx.log.info({ name, count }, "greeted");
    return { message: \`Hello, \${name}!\`, count };
  }

  reset(_req: Record<string, never>, ctx: Ctx): void {
    this.counts.clear();
    ctx.states.counts.set({});
  }
}
`;
}

const TRANSPORTS: Record<ServiceNames["transport"], string> = {
  redis: `{ redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" } }`,
  amqp: `{ amqp: { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" } }`,
  nats: `{ nats: { url: (process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222").split(",") } }`,
  // zmq has no broker: events and state updates go through an event hub, hosted by this process
  // on 5571/5572 unless FAN_ZMQ_EVENTS_PUBLISH and FAN_ZMQ_EVENTS_SUBSCRIBE name another. A
  // second process (another instance) cannot bind those ports again: it sets both to the first's.
  zmq: `{ zmq: process.env.FAN_ZMQ_EVENTS_PUBLISH === undefined && process.env.FAN_ZMQ_EVENTS_SUBSCRIBE === undefined ? { hub: { publishPort: 5571, subscribePort: 5572 } } : {} }`,
  // http carries calls; events and state updates need a broker: redis here.
  http: `{ http: {}, redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" } }`,
  // tcp carries calls and pushes, no events: the same.
  tcp: `{ tcp: {}, redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" } }`,
};

export function main(n: ServiceNames): string {
  return `// Serves ${n.name} over ${n.transport}, registered in discovery, until SIGINT or SIGTERM (drains first).
import { createApp } from "fan/runtime";
import { ${n.name} } from "../${generatedModule(n)}";
import { ${n.name}Service } from "./${n.file}.js";

const discovery = (process.env.FAN_DISCOVERY ?? "etcd://127.0.0.1:2379") as \`etcd://\${string}\`;
const cluster = process.env.FAN_CLUSTER ?? "dev";
const app = createApp({
  cluster,
  discovery,
  transports: ${TRANSPORTS[n.transport]},
  handleSignals: true,
}).serve(${n.name}, new ${n.name}Service());
await app.start();
console.log(\`${n.name} serving over ${n.transport} (cluster \${cluster}, \${discovery}); try: npx fanc call ${n.name}.hello '{"name":"Ada"}'\`);
`;
}

export function test(n: ServiceNames): string {
  return `import { createTestApp } from "fan/testing";
import { expect, it } from "vitest";
import { ${n.name}, mock${n.name}, NameRefused } from "../${generatedModule(n)}";
import { ${n.name}Service } from "../src/${n.file}.js";

it("hello greets, counts, publishes greeted and updates the counts state", async () => {
  const app = createTestApp().serve(${n.name}, new ${n.name}Service());
  await app.start();
  const client = app.client(${n.name});
  const seen: string[] = [];
  await client.events.greeted.subscribe(({ name, count }) => void seen.push(\`\${name} \${count}\`));
  const view = client.states.counts.watch();
  await view.ready();

  expect(await client.hello({ name: "Ada" })).toEqual({ message: "Hello, Ada!", count: 1 });
  expect((await client.hello({ name: "Ada" })).count).toBe(2);
  await expect(client.hello({ name: " " })).rejects.toBeInstanceOf(NameRefused);
  await expect.poll(() => seen).toEqual(["Ada 1", "Ada 2"]);
  await expect.poll(() => view.current).toEqual({ Ada: 2 });

  await client.reset();
  await expect.poll(() => view.current).toEqual({});
  await view.close();
  await app.stop();
});

it("code that calls ${n.name} can be tested against its generated mock", async () => {
  const greeter = mock${n.name}().hello.returns({ message: "stub", count: 7 });
  const app = createTestApp().mock(greeter);
  await app.start();
  expect((await app.client(${n.name}).hello({ name: "Bo" })).count).toBe(7);
  expect(greeter.hello.calls).toHaveLength(1);
  await app.stop();
});
`;
}

/** The devDependencies of a new project: the versions fan itself is built and tested with. */
export interface ToolVersions {
  readonly typescript: string;
  readonly vitest: string;
  readonly tsx: string;
  readonly typesNode: string;
}

export function packageJson(projectName: string, fanSpec: string, v: ToolVersions): Record<string, unknown> {
  return {
    name: projectName,
    version: "0.1.0",
    private: true,
    type: "module",
    scripts: SCRIPTS,
    dependencies: { fan: fanSpec },
    devDependencies: { "@types/node": v.typesNode, tsx: v.tsx, typescript: v.typescript, vitest: v.vitest },
  };
}

/** The package.json scripts (added where missing to an existing package.json). */
export const SCRIPTS: Readonly<Record<string, string>> = {
  compile: "fanc compile idl/",
  typecheck: "fanc compile idl/ && tsc --noEmit",
  start: "fanc compile idl/ && tsx src/main.ts",
  dev: "fanc dev idl/ --run src/main.ts",
  test: "fanc compile idl/ && vitest run",
};

export const TSCONFIG = `{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "lib": ["ES2023"],
    "types": ["node"],
    "strict": true,
    "exactOptionalPropertyTypes": true,
    "noUncheckedIndexedAccess": true,
    "verbatimModuleSyntax": true,
    "skipLibCheck": true,
    "outDir": "dist"
  },
  "include": ["src", "generated", "test"]
}
`;

export const VITEST_CONFIG = `import { defineConfig } from "vitest/config";

export default defineConfig({ test: { include: ["test/**/*.test.ts"] } });
`;

export const GITIGNORE = `node_modules/
dist/
generated/
`;
