/**
 * `fanc new service` and `fanc init` in-process: what they write, what they refuse, and that
 * nothing is overwritten. (test/package/new-project.test.ts installs, compiles, tests and runs
 * the result as a user would.)
 */
import { readFileSync } from "node:fs";
import { afterEach, expect, it } from "vitest";
import { run } from "../../src/cli/new.js";
import { captureIo, TempDir } from "./helpers.js";

let tmp: TempDir;
afterEach(() => tmp?.cleanup());

it("new service writes the stub, handler, main, test and project files, naming the package", async () => {
  tmp = new TempDir();
  const io = captureIo();
  expect(
    await run(["service", "OrderBook", "--package", "shop.orders", "--transport", "amqp", "--dir", tmp.path], io),
  ).toBe(0);
  expect(tmp.files(".")).toEqual([
    ".gitignore",
    "idl/shop/orders.fan",
    "package.json",
    "src/main.ts",
    "src/order-book.ts",
    "test/order-book.test.ts",
    "tsconfig.json",
    "vitest.config.ts",
  ]);
  expect(tmp.read("idl/shop/orders.fan")).toMatch(/^package shop\.orders\n[\s\S]*service OrderBook \{/);
  expect(tmp.read("src/order-book.ts")).toContain("export class OrderBookService implements OrderBookHandler");
  expect(tmp.read("src/main.ts")).toContain(
    'amqp: { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" }',
  );
  expect(tmp.read("test/order-book.test.ts")).toContain("mockOrderBook()");
  const pkg = JSON.parse(tmp.read("package.json") ?? "{}") as {
    type: string;
    scripts: Record<string, string>;
    dependencies: Record<string, string>;
  };
  expect(pkg.type).toBe("module");
  expect(pkg.scripts.dev).toBe("fanc dev idl/ --run src/main.ts");
  expect(pkg.dependencies.fan).toMatch(/^\^\d+\.\d+\.\d+/);
  expect(io.outText()).toContain("npx fanc call OrderBook.hello");
});

it("new service --transport nats serves on NATS (FAN_NATS_URL, default the loopback server)", async () => {
  tmp = new TempDir();
  const io = captureIo();
  expect(await run(["service", "Greeter", "--transport", "nats", "--dir", tmp.path], io)).toBe(0);
  expect(tmp.read("src/main.ts")).toContain(
    'transports: { nats: { url: (process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222").split(",") } }',
  );
  expect(io.outText()).toContain("Greeter (package greeter, served over nats)");
  expect(io.outText()).toContain("etcd and nats on loopback");
});

it("new service --transport zmq hosts an event hub, so the stub's event and state work without a broker", async () => {
  tmp = new TempDir();
  const io = captureIo();
  expect(await run(["service", "Zed", "--transport", "zmq", "--dir", tmp.path], io)).toBe(0);
  // Without a hub, hello's emit failed with FAILED_PRECONDITION "zmq events need an event hub".
  expect(tmp.read("src/main.ts")).toContain(
    "transports: { zmq: process.env.FAN_ZMQ_EVENTS_PUBLISH === undefined && process.env.FAN_ZMQ_EVENTS_SUBSCRIBE === undefined ? { hub: { publishPort: 5571, subscribePort: 5572 } } : {} }",
  );
  expect(io.outText()).toContain("it hosts the zmq event hub on 5571/5572");
  // A second instance cannot bind 5571/5572 again: it is told to use the first's hub.
  expect(io.outText()).toMatch(
    /FAN_ZMQ_EVENTS_PUBLISH=tcp:\/\/127\.0\.0\.1:5571 FAN_ZMQ_EVENTS_SUBSCRIBE=tcp:\/\/127\.0\.0\.1:5572 npm start +# a second instance, on the first's event hub/,
  );
});

it("never overwrites: a second service keeps main.ts and package.json's scripts; the same one is refused", async () => {
  tmp = new TempDir();
  tmp.write("package.json", JSON.stringify({ name: "x", type: "module", scripts: { test: "mine" } }));
  const greeter = captureIo();
  expect(await run(["service", "Greeter", "--dir", tmp.path], greeter)).toBe(0);
  const pkg = JSON.parse(tmp.read("package.json") ?? "{}") as { type: string; scripts: Record<string, string> };
  expect(pkg.scripts.test).toBe("mine");
  expect(pkg.scripts.compile).toBe("fanc compile idl/");
  expect(pkg.type).toBe("module");
  // The project's own test script may do anything: the next step runs the new test itself.
  expect(greeter.outText()).toMatch(
    /npm install && npx fanc compile idl\/ && npx vitest run test\/greeter\.test\.ts +#/,
  );
  const main = tmp.read("src/main.ts");
  const billing = captureIo();
  expect(await run(["service", "Billing", "--transport", "nats", "--dir", tmp.path], billing)).toBe(0);
  expect(tmp.read("src/main.ts")).toBe(main);
  // The kept main.ts does not serve Billing: the next steps say so, and how to add it.
  expect(billing.outText()).toContain("src/main.ts was already there and does not serve it yet");
  expect(billing.outText()).toContain('import { Billing } from "../generated/billing.js";');
  expect(billing.outText()).toContain("`.serve(Billing, new BillingService())`");
  expect(billing.outText()).not.toContain("served over nats");
  expect(billing.outText()).toMatch(/npm start +# serves what .*src\/main\.ts serves/);
  // The --transport it was given did not shape anything: said, not dropped.
  expect(billing.outText()).toContain("--transport nats shapes only a main.ts fanc writes");
  // A zmq service added to a project whose main.ts fanc did not write: no hub hint for a
  // second instance (that main.ts opens its own transports, maybe no zmq at all).
  const stock = captureIo();
  expect(await run(["service", "Stock", "--transport", "zmq", "--dir", tmp.path], stock)).toBe(0);
  expect(stock.outText()).toContain("--transport zmq shapes only a main.ts fanc writes");
  expect(stock.outText()).not.toContain("FAN_ZMQ_EVENTS_PUBLISH");
  const plain = captureIo();
  expect(await run(["service", "Ledger", "--dir", tmp.path], plain)).toBe(0);
  expect(plain.outText()).not.toContain("shapes only");
  const io = captureIo();
  expect(await run(["service", "Greeter", "--dir", tmp.path], io)).toBe(2);
  expect(io.errText()).toMatch(/idl\/greeter\.fan already exists; nothing was written \(choose another --package\)/);
  // The handler's file is named after the service: another --package cannot help.
  const other = captureIo();
  expect(await run(["service", "Greeter", "--package", "other.greeter", "--dir", tmp.path], other)).toBe(2);
  expect(other.errText()).toMatch(
    /src\/greeter\.ts already exists; nothing was written \(choose another service name\)$/,
  );
});

it("refuses a CommonJS package.json, said or by default, and writes nothing", async () => {
  tmp = new TempDir();
  for (const type of ["commonjs", undefined]) {
    const before = JSON.stringify({ name: "x", type, scripts: { start: "node index.js" } });
    tmp.write("package.json", before);
    const io = captureIo();
    expect(await run(["service", "Billing", "--dir", tmp.path], io)).toBe(2);
    expect(io.errText()).toContain(type === undefined ? 'has no "type" (so it is CommonJS)' : 'has "type": "commonjs"');
    expect(io.errText()).toContain("fan is ESM-only");
    expect(io.errText()).toContain("Nothing was written. Make the project ESM with `npm pkg set type=module`");
    expect(tmp.read("package.json")).toBe(before);
    expect(tmp.files(".")).toEqual(["package.json"]);
  }
});

it("in an npm init project, the next steps it prints work: placeholder test replaced, the tools the scripts run added", async () => {
  tmp = new TempDir();
  // What `npm init -y` and `npm pkg set type=module` write, and fan installed.
  const npmInit = {
    name: "shop",
    version: "1.0.0",
    main: "index.js",
    scripts: { test: 'echo "Error: no test specified" && exit 1' },
    type: "module",
    dependencies: { fan: "file:../fan-0.1.0.tgz" },
    devDependencies: { typescript: "~5.9", vitest: "^4.1.0" },
  };
  tmp.write("package.json", JSON.stringify(npmInit, null, 2));
  const io = captureIo();
  expect(await run(["service", "Orders", "--dir", tmp.path], io)).toBe(0);
  const pkg = JSON.parse(tmp.read("package.json") ?? "{}") as {
    scripts: Record<string, string>;
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  expect(pkg.scripts.test).toBe("fanc compile idl/ && vitest run");
  expect(pkg.dependencies).toEqual({ fan: "file:../fan-0.1.0.tgz" });
  // start and dev run tsx; the test and tsconfig need node's types; the project's own versions are kept.
  expect(Object.keys(pkg.devDependencies).sort()).toEqual(["@types/node", "tsx", "typescript", "vitest"]);
  expect(pkg.devDependencies.typescript).toBe("~5.9");
  expect(io.outText()).toContain(
    "package.json (added scripts compile, typecheck, start, dev; replaced npm's placeholder test script; added devDependencies @types/node, tsx)",
  );
  expect(io.outText()).not.toContain("note: package.json asks for fan");
  expect(io.outText()).toMatch(/npm install && npm test +# compiles idl\//);
  // main.ts was written here: it serves over redis with etcd discovery, so fanc call reaches it.
  expect(io.outText()).toContain("npx fanc call Orders.hello");
  // A project's own main.ts may serve in-process only (createApp's local transport): no fanc call.
  const billing = captureIo();
  expect(await run(["service", "Billing", "--dir", tmp.path], billing)).toBe(0);
  expect(billing.outText()).not.toContain("wrote package.json");
  expect(billing.outText()).not.toContain("fanc call");
});

it("refuses bad names and packages, and init in a folder that is not empty", async () => {
  tmp = new TempDir();
  const bad = async (args: string[], kind: "new" | "init", msg: RegExp): Promise<void> => {
    const io = captureIo();
    expect(await run(args, io, kind)).toBe(2);
    expect(io.errText()).toMatch(msg);
  };
  await bad(["service", "greeter", "--dir", tmp.path], "new", /must be PascalCase/);
  await bad(
    ["service", "Greeter", "--package", "Shop.X", "--dir", tmp.path],
    "new",
    /--package must be lower-case dotted words/,
  );
  await bad(
    ["service", "Greeter", "--transport", "mqtt", "--dir", tmp.path],
    "new",
    /--transport must be one of redis, amqp, nats, zmq, http, tcp/,
  );
  await bad(["thing", "X", "--dir", tmp.path], "new", /expected: fanc new service <Name>/);
  tmp.write("README.md", "hi");
  await bad(["--dir", tmp.path], "init", /fanc init needs an empty folder; .* has README\.md/);
});

it("init names the service after the folder", async () => {
  tmp = new TempDir();
  tmp.write("shop-front/.keep", "");
  const io = captureIo();
  expect(await run(["--dir", `${tmp.path}/shop-front`], io, "init")).toBe(0);
  expect(tmp.read("shop-front/idl/shopfront.fan")).toContain("service ShopFront {");
});

it("the README's project and fanc init's agree: the same @types/node major, and the Node versions engines allows", async () => {
  tmp = new TempDir();
  expect(await run(["--dir", tmp.path], captureIo(), "init")).toBe(0);
  const pkg = JSON.parse(tmp.read("package.json") ?? "{}") as { devDependencies: Record<string, string> };
  const repoFile = (rel: string): string => readFileSync(new URL(`../../${rel}`, import.meta.url), "utf8");
  // install.sh is the README's install block (test/package/readme.test.ts keeps them equal).
  const major = /@types\/node@(\d+)/.exec(repoFile("examples/user-project/install.sh"))?.[1];
  expect(pkg.devDependencies["@types/node"]).toMatch(new RegExp(`^\\^${major}\\.`));
  const engines = (JSON.parse(repoFile("package.json")) as { engines: { node: string } }).engines.node;
  expect(engines).toBe("^20.19.0 || ^22.12.0 || ^24.0.0");
  expect(repoFile("README.md")).toContain("Node 20.19 or later, 22.12 or later, or 24");
});
