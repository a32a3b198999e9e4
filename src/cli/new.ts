/**
 * `fanc new service <Name>` and `fanc init`: a service to fill in, from templates
 * (`new-templates.ts`). `new service` adds the `.fan` stub, its handler, `src/main.ts` (when
 * there is none) and a test to a project, creating the project files it lacks; `init` does
 * the same in an empty folder, naming the service after the folder. Nothing is overwritten:
 * a file that exists is a usage error naming it, before anything is written.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Io, processIo } from "./io.js";
import { UsageError } from "./ls.js";
import * as T from "./new-templates.js";

const USAGE = `usage: fanc new service <Name> [--package x.y] [--transport redis|amqp|nats|zmq|http|tcp] [--dir <dir>] [--fan <spec>]
       fanc init [<Name>] [same options]

new service   adds a service to the project in --dir (default: the current folder): the .fan
              stub under idl/, its handler in src/, src/main.ts serving it (unless there is one),
              a vitest test with the test kit and its generated mock, and the project files it
              lacks (package.json with compile/start/dev/test scripts, tsconfig.json,
              vitest.config.ts, .gitignore). Existing files are never overwritten; an existing
              package.json gets only the scripts and dependencies it lacks (npm's placeholder
              test script is replaced), and must be ESM ("type": "module"): fan is ESM-only.
init          the same in an empty folder; the service is named after the folder by default.

options:
  --package <x.y>       the IDL package (default: the service name in lower case)
  --transport <name>    what src/main.ts serves on: redis (default), amqp, nats, zmq, or http or tcp
                        (+ redis for events and state updates)
  --dir <dir>           the project folder (default: .)
  --fan <spec>          the "fan" dependency written to a package.json that has none (default:
                        where this fanc was installed from, when that was a tarball or git URL,
                        else ^<this version>; e.g. file:../fan-0.1.0.tgz)
  -h, --help            show this help

Then: npm install, npx fanc compile idl/, npm test, npm start (needs etcd and the broker).`;

const TRANSPORTS = ["redis", "amqp", "nats", "zmq", "http", "tcp"] as const;

/** The zmq event hub a generated main.ts hosts (publish, subscribe), for a second process to use. */
const ZMQ_HUB = ["tcp://127.0.0.1:5571", "tcp://127.0.0.1:5572"] as const;

/** `Greeter` -> `greeter`, `OrderBook` -> `order-book`. */
function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
}

/** `my-shop` -> `MyShop`. */
function pascal(folder: string): string {
  const words = folder.split(/[^A-Za-z0-9]+/).filter((w) => w !== "");
  const name = words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join("");
  return /^[A-Z]/.test(name) ? name : `Service${name}`;
}

function fanPackage(): Record<string, Record<string, string> | string> {
  return JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as Record<
    string,
    Record<string, string>
  >;
}

/** npm's placeholder `test` script (`npm init` writes it): replaced, as it fails `npm test`. */
const NPM_PLACEHOLDER_TEST = 'echo "Error: no test specified" && exit 1';

/** What `fanc new` writes, relative to the project, and what it says about it. */
interface Plan {
  /** Each file to write (new, or package.json with additions). */
  readonly files: Map<string, string>;
  /** What was changed in an existing package.json, for its `wrote` line. */
  readonly packageChanges: string[];
  /** The package.json scripts once written (the project's own kept). */
  readonly scripts: Readonly<Record<string, string>>;
}

/**
 * Refuses a package.json whose module system is not ESM, before anything is written: fan's
 * generated code and the files written here are ES modules, and switching a project's module
 * system is the user's call (docs/decisions.md).
 */
function requireEsm(pkgPath: string, type: unknown): void {
  if (type === "module") return;
  const has = type === undefined ? 'has no "type" (so it is CommonJS)' : `has "type": ${JSON.stringify(type)}`;
  throw new UsageError(
    `${pkgPath} ${has}; fan is ESM-only: its generated code and the files fanc new writes are ES modules, and tsc fails on them in a CommonJS project (TS1295, TS1287). Nothing was written. Make the project ESM with \`npm pkg set type=module\` (and rename your own CommonJS .js files to .cjs), then run fanc new again.`,
  );
}

/** The project's tools fan's scripts and files use, at the versions fan is built with. */
function toolVersions(fan: Record<string, Record<string, string> | string>): T.ToolVersions {
  const dev = (fan.devDependencies ?? {}) as Record<string, string>;
  return {
    typescript: dev.typescript ?? "~5.9.3",
    vitest: dev.vitest ?? "^4.0.0",
    tsx: dev.tsx ?? "^4.20.6",
    typesNode: dev["@types/node"] ?? "^20.19.0",
  };
}

/**
 * Where this fanc was installed from, when it was not the registry: the project that installed
 * it (or npx's cache folder, for \`npx --package <tarball> fanc init\`) names the tarball or git
 * URL in its package.json, next to \`node_modules/fan\`. A \`file:\` spec is made relative to
 * \`dir\`, the project being written. Undefined for a registry range or when fanc runs from a
 * checkout.
 */
export function installedSpec(dir: string): string | undefined {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const modules = dirname(root);
  if (basename(modules) !== "node_modules") return undefined;
  const host = dirname(modules);
  let pkg: { dependencies?: Record<string, unknown>; devDependencies?: Record<string, unknown> };
  try {
    pkg = JSON.parse(readFileSync(join(host, "package.json"), "utf8")) as typeof pkg;
  } catch {
    return undefined;
  }
  const spec = pkg.dependencies?.fan ?? pkg.devDependencies?.fan;
  if (typeof spec !== "string") return undefined;
  if (spec.startsWith("file:")) {
    const rel = relative(resolve(dir), resolve(host, spec.slice("file:".length)))
      .split("\\")
      .join("/");
    return `file:${rel.startsWith("../") || rel.startsWith("/") ? rel : `./${rel}`}`;
  }
  // A git URL, a tarball URL or a GitHub shorthand (owner/repo); a semver range is the registry's.
  return /^(git\+|git:|github:|https?:)/.test(spec) || /^[^@\s]+\/[^\s]+$/.test(spec) ? spec : undefined;
}

/** The files to write, relative to the project; each is new, or is package.json with additions. */
function plan(dir: string, n: T.ServiceNames, fanSpec: string | undefined): Plan {
  const files = new Map<string, string>();
  files.set(T.fanPath(n), T.fanStub(n));
  files.set(`src/${n.file}.ts`, T.handler(n));
  files.set(`test/${n.file}.test.ts`, T.test(n));
  const optional = new Map<string, string>([
    ["src/main.ts", T.main(n)],
    ["tsconfig.json", T.TSCONFIG],
    ["vitest.config.ts", T.VITEST_CONFIG],
    [".gitignore", T.GITIGNORE],
  ]);
  for (const [rel, text] of optional) if (!existsSync(join(dir, rel))) files.set(rel, text);
  for (const rel of files.keys()) {
    if (!existsSync(join(dir, rel)) || optional.has(rel)) continue;
    // The stub's path comes from --package, the handler's and test's from the service name.
    const hint = rel === T.fanPath(n) ? "choose another --package" : "choose another service name";
    throw new UsageError(`${join(dir, rel)} already exists; nothing was written (${hint})`);
  }
  const pkgPath = join(dir, "package.json");
  const fan = fanPackage();
  const versions = toolVersions(fan);
  const spec = fanSpec ?? installedSpec(dir) ?? `^${String(fan.version)}`;
  if (!existsSync(pkgPath)) {
    const name = basename(resolve(dir))
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, "-");
    files.set("package.json", `${JSON.stringify(T.packageJson(name, spec, versions), null, 2)}\n`);
    return { files, packageChanges: [], scripts: T.SCRIPTS };
  }
  let pkg: Record<string, unknown>;
  try {
    pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`${pkgPath} is not valid JSON: ${(e as Error).message}`);
  }
  requireEsm(pkgPath, pkg.type);
  const own = (pkg.scripts as Record<string, string> | undefined) ?? {};
  const scripts = { ...own };
  const changes: string[] = [];
  const added = Object.keys(T.SCRIPTS).filter((k) => own[k] === undefined);
  if (own.test === NPM_PLACEHOLDER_TEST) changes.push("replaced npm's placeholder test script");
  for (const [k, v] of Object.entries(T.SCRIPTS))
    if (own[k] === undefined || (k === "test" && own.test === NPM_PLACEHOLDER_TEST)) scripts[k] = v;
  if (added.length > 0) changes.unshift(`added scripts ${added.join(", ")}`);
  // What the scripts and the written files need: fan, tsc, tsx (start, dev), vitest, node's types.
  const deps = { ...((pkg.dependencies as Record<string, string> | undefined) ?? {}) };
  const devDeps = { ...((pkg.devDependencies as Record<string, string> | undefined) ?? {}) };
  const present = (name: string): boolean => deps[name] !== undefined || devDeps[name] !== undefined;
  if (!present("fan")) {
    deps.fan = spec;
    changes.push(`added dependency fan ${spec}`);
  }
  const tools: [string, string][] = [
    ["@types/node", versions.typesNode],
    ["tsx", versions.tsx],
    ["typescript", versions.typescript],
    ["vitest", versions.vitest],
  ];
  const missing = tools.filter(([name]) => !present(name));
  for (const [name, version] of missing) devDeps[name] = version;
  if (missing.length > 0) changes.push(`added devDependencies ${missing.map(([name]) => name).join(", ")}`);
  if (changes.length > 0) {
    const next: Record<string, unknown> = { ...pkg, scripts };
    if (Object.keys(deps).length > 0) next.dependencies = deps;
    if (Object.keys(devDeps).length > 0) next.devDependencies = devDeps;
    files.set("package.json", `${JSON.stringify(next, null, 2)}\n`);
  }
  return { files, packageChanges: changes, scripts };
}

/** `fanc new ...` (kind "new") and `fanc init ...` (kind "init"): returns the exit code. */
export async function run(args: string[], io: Io = processIo, kind: "new" | "init" = "new"): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        package: { type: "string" },
        transport: { type: "string" },
        dir: { type: "string" },
        fan: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const dir = values.dir ?? ".";
    let name: string | undefined;
    if (kind === "new") {
      const [what, n, ...rest] = positionals;
      if (what !== "service" || n === undefined || rest.length > 0)
        throw new UsageError(`expected: fanc new service <Name>\n${USAGE}`);
      name = n;
    } else {
      if (positionals.length > 1) throw new UsageError(`expected: fanc init [<Name>]\n${USAGE}`);
      const present = existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith(".")) : [];
      if (present.length > 0)
        throw new UsageError(
          `fanc init needs an empty folder; ${resolve(dir)} has ${present.slice(0, 5).join(", ")} (use fanc new service <Name> there)`,
        );
      name = positionals[0] ?? pascal(basename(resolve(dir)));
    }
    if (!/^[A-Z][A-Za-z0-9]*$/.test(name))
      throw new UsageError(`the service name must be PascalCase (Greeter, OrderBook), got ${JSON.stringify(name)}`);
    const pkg = values.package ?? name.toLowerCase();
    if (!/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/.test(pkg))
      throw new UsageError(`--package must be lower-case dotted words (shop.orders), got ${JSON.stringify(pkg)}`);
    const transport = (values.transport ?? "redis") as T.ServiceNames["transport"];
    if (!TRANSPORTS.includes(transport))
      throw new UsageError(`--transport must be one of ${TRANSPORTS.join(", ")}, got ${JSON.stringify(transport)}`);
    const names: T.ServiceNames = { name, pkg, file: kebab(name), transport };
    const { files, packageChanges, scripts } = plan(dir, names, values.fan);
    const fanAdded =
      !existsSync(join(dir, "package.json")) || packageChanges.some((c) => c.startsWith("added dependency fan"));
    for (const [rel, text] of files) {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), text);
    }
    const shown = relative(process.cwd(), resolve(dir)) || ".";
    const where = shown === "." ? "the current folder" : shown;
    for (const rel of files.keys())
      io.out(
        `  wrote ${join(shown, rel)}${rel === "package.json" && packageChanges.length > 0 ? ` (${packageChanges.join("; ")})` : ""}`,
      );
    const written = fanAdded ? JSON.parse(files.get("package.json") ?? "{}").dependencies?.fan : undefined;
    if (typeof written === "string" && values.fan === undefined)
      io.out(
        written.startsWith("^")
          ? `  note: package.json asks for fan ${JSON.stringify(written)} from the registry; install fan from where you got it instead (npm install <tarball or git URL>), or pass --fan <spec>`
          : `  note: package.json takes fan from ${written}, where this fanc was installed from (--fan <spec> to choose)`,
      );
    const broker =
      transport === "zmq" ? "" : ` and ${transport === "http" || transport === "tcp" ? "redis" : transport}`;
    // The steps use the project's scripts only where they are fan's: its own test or start may do anything.
    const test =
      scripts.test === T.SCRIPTS.test
        ? "npm test"
        : `npx fanc compile idl/ && npx vitest run test/${names.file}.test.ts`;
    const start = scripts.start === T.SCRIPTS.start ? "npm start" : "npx fanc compile idl/ && npx tsx src/main.ts";
    const steps: [string, string][] = [
      [
        `${shown === "." ? "" : `cd ${shown} && `}npm install && ${test}`,
        "compiles idl/, runs the test with the test kit",
      ],
      [
        start,
        `serves it (etcd${broker} on loopback, or FAN_DISCOVERY${transport === "zmq" ? "; it hosts the zmq event hub on 5571/5572" : ""})`,
      ],
    ];
    // A second instance cannot host the hub again (its ports are taken): it uses the first's.
    // Only when fanc wrote main.ts: a project's own main.ts opens its own transports.
    if (transport === "zmq" && files.has("src/main.ts"))
      steps.push([
        `FAN_ZMQ_EVENTS_PUBLISH=${ZMQ_HUB[0]} FAN_ZMQ_EVENTS_SUBSCRIBE=${ZMQ_HUB[1]} ${start}`,
        "a second instance, on the first's event hub",
      ]);
    // fanc call reaches a service registered in discovery over a broker: the main.ts fanc
    // writes; a project's own may serve in-process only (createApp's default local transport).
    if (files.has("src/main.ts")) steps.push([`npx fanc call ${name}.hello '{"name":"Ada"}'`, ""]);
    if (files.has("src/main.ts")) io.out(`fanc: ${name} (package ${pkg}, served over ${transport}) in ${where}. Next:`);
    else {
      // The project's own main.ts is left alone: it does not serve the new service until told to.
      const main = join(shown, "src/main.ts");
      io.out(`fanc: ${name} (package ${pkg}) in ${where}. ${main} was already there and does not serve it yet: add
    import { ${name} } from "../${T.generatedModule(names)}";
    import { ${name}Service } from "./${names.file}.js";
  and \`.serve(${name}, new ${name}Service())\` to its createApp(...) (on the transports it opens).${
    values.transport === undefined
      ? ""
      : ` --transport ${transport} shapes only a main.ts fanc writes: open ${transport} there yourself if it does not.`
  } Next:`);
      steps[1] = [start, `serves what ${main} serves`];
    }
    const width = Math.max(...steps.filter(([, why]) => why !== "").map(([cmd]) => cmd.length)) + 2;
    io.out(steps.map(([cmd, why]) => `  ${why === "" ? cmd : `${cmd.padEnd(width)}# ${why}`}`).join("\n"));
    return 0;
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      io.err(`fanc ${kind}: ${(e as Error).message}`);
      return 2;
    }
    throw e;
  }
}
