/**
 * Reloading the gateway's IDL while it serves: `fanc gateway` reloads on SIGHUP, and with
 * `--watch` after a change under the IDL folder (watched with `fanc compile --watch`'s folder
 * watcher, cli/watch-dirs.ts, and debounced as it is) or of a symbolic link on its path (a
 * deploy switching `idl -> releases/v2`). An IDL that compiles becomes a new
 * `Catalog` (which keeps the entries of services that did not change) that the server swaps in
 * for new requests (the clients of the entries it replaced are released once no call or stream
 * uses them, server.ts); one that does not is reported with its located, coded diagnostics and
 * the previous one goes on being served. Reloads run one at a time. What the gateway opened at
 * start (its transports, its App) stays: a service the new IDL adds on a transport the gateway
 * did not open is named in a warning, not left to answer 503 unexplained.
 */
import { type FSWatcher, lstatSync, readlinkSync, realpathSync, watch } from "node:fs";
import { join, parse, resolve, sep } from "node:path";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { loadIdl } from "../cli/call.js";
import type { Io } from "../cli/io.js";
import { DirectoryWatcher } from "../cli/watch-dirs.js";
import type { App } from "../runtime/app/app.js";
import type { ServiceDescriptor } from "../runtime/descriptor.js";
import { Catalog, type ClientFactory } from "./catalog.js";
import type { GatewayServer } from "./server.js";

/** Quiet time after the last change under the folder before a reload, ms (`fanc compile --watch`'s). */
const DEBOUNCE_MS = 40;
/** How often a watched folder that is gone is looked for (`fanc compile --watch`'s retry). */
const RETRY_MS = 500;

export interface ReloadOptions {
  /** The IDL folder, as given to `fanc gateway`. */
  readonly dir: string;
  readonly app: App;
  readonly server: GatewayServer;
  readonly client: ClientFactory;
  /** The `fanc gateway: ...` lines (stderr). */
  readonly io: Io;
  readonly log: Logger;
}

export class IdlReloader {
  readonly #o: ReloadOptions;
  #running: Promise<void> | undefined;
  /** A reload asked while one ran (its cause), run after it. */
  #again: { why: string; quiet: boolean } | undefined;
  #watcher: DirectoryWatcher | undefined;
  /** Watches of the folders holding the symbolic links on the IDL path (`linksOf`). */
  #links: FSWatcher[] = [];
  /** The folder was gone at the last look (said once). */
  #gone = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: ReloadOptions) {
    this.#o = opts;
  }

  /**
   * Compiles the IDL again and serves it, or says why not. `why` names the cause in the line
   * logged; `quiet` leaves out the line of a reload that changed nothing (a watched save).
   */
  async reload(why: string, quiet = false): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = { why, quiet: quiet && (this.#again?.quiet ?? true) };
      return this.#running;
    }
    this.#running = this.#load(why, quiet);
    await this.#running;
    this.#running = undefined;
    const again = this.#again;
    this.#again = undefined;
    if (again !== undefined && !this.#closed) await this.reload(again.why, again.quiet);
  }

  /**
   * Reloads after changes under the IDL folder (40 ms after the last of a burst). A folder
   * replaced whole (deleted and made again, another renamed in its place) is followed: while it
   * is gone the reload says so once, and it is looked for every 500 ms.
   */
  watch(): void {
    if (!this.#watch()) throw new Error(`cannot watch ${this.#o.dir}`);
  }

  /** Stops watching; waits for a reload in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#unwatchLinks();
    await this.#running;
  }

  /**
   * Watches the folder as it is now (a new watcher when it was replaced or a link on its path
   * now leads elsewhere); false when it cannot be read. The folder is watched where the path
   * leads (its real path), and each symbolic link on the way in the folder that holds it: a
   * link retargeted (`ln -sfn releases/v2 idl`, a `current` link switched by a deploy) changes
   * no file of the folder watched until then.
   */
  #watch(): boolean {
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#watchLinks();
    const dir = this.#o.dir;
    let real: string;
    try {
      real = realpathSync(dir);
    } catch {
      return false;
    }
    const watcher = new DirectoryWatcher(real, {
      // Any change, not only a `.fan` file's: a Kubernetes ConfigMap swaps a `..data` link, a
      // deploy renames a folder. A reload that finds the IDL as it was prints nothing.
      change: () => this.#schedule(),
      error: (e) => {
        this.#o.io.err(
          `fanc gateway: warning: --watch: lost the watch of ${dir} (${e instanceof Error ? e.message : String(e)}); watching it again`,
        );
        this.#schedule();
      },
    });
    try {
      watcher.sync();
    } catch {
      watcher.close();
      return false;
    }
    this.#watcher = watcher;
    return true;
  }

  /** A watch of the folder holding each link on the IDL path, for changes of the link's entry. */
  #watchLinks(): void {
    this.#unwatchLinks();
    const byDir = new Map<string, Set<string>>();
    for (const l of linksOf(this.#o.dir)) byDir.set(l.dir, (byDir.get(l.dir) ?? new Set()).add(l.name));
    for (const [dir, names] of byDir) {
      let w: FSWatcher;
      try {
        // Only the links' own entries: the folder may be busy (a release folder beside them).
        w = watch(dir, (_event, name) => {
          if (name === null || names.has(String(name))) this.#schedule();
        });
      } catch {
        continue; // gone since: the retry of a folder that cannot be read looks again
      }
      w.on("error", () => {
        w.close();
        this.#schedule();
      });
      this.#links.push(w);
    }
  }

  #unwatchLinks(): void {
    for (const w of this.#links.splice(0)) w.close();
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const why = `--watch: ${this.#o.dir} changed`;
      // Watched anew before the files are read: folders made since, or a folder that replaced
      // the watched one (whose watch went deaf when it was deleted), miss nothing.
      if (this.#watch()) {
        this.#gone = false;
        void this.reload(why, true);
        return;
      }
      // Gone: the reload says once that it cannot be read (the previous IDL stays); look again.
      if (!this.#gone) void this.reload(why, true);
      this.#gone = true;
      this.#timer = setTimeout(() => this.#schedule(), RETRY_MS);
    }, DEBOUNCE_MS);
  }

  async #load(why: string, quiet: boolean): Promise<void> {
    const t0 = performance.now();
    const before = this.#o.server.catalog;
    let after: Catalog;
    try {
      const schemas = await loadIdl(this.#o.dir);
      const descriptors = schemas.services().map((s) => schemas.descriptor(s));
      if (descriptors.length === 0) throw new Error(`the IDL under ${this.#o.dir} declares no service`);
      after = new Catalog(schemas.model, descriptors, this.#o.client, before);
    } catch (e) {
      this.#o.io.err(
        `fanc gateway: reload failed, still serving the previous IDL: ${e instanceof Error ? e.message : String(e)}`,
      );
      return;
    }
    if (this.#closed) return;
    const ended = this.#o.server.swap(after);
    const changed = changes(before, after);
    if (ended > 0) changed.push(`ended ${ended} open stream(s) of what it removed`);
    if (changed.length > 0 || !quiet)
      this.#o.io.err(
        `fanc gateway: reloaded the IDL (${why}, ${Math.round(performance.now() - t0)} ms): ${changed.length > 0 ? changed.join("; ") : "no change"}`,
      );
    for (const text of unreachable(after, before, this.#o.app.transportNames()))
      this.#o.io.err(`fanc gateway: warning: ${text}`);
    for (const text of after.shadowed) if (!before.shadowed.includes(text)) this.#o.log.warn(text);
  }
}

/** Symbolic links followed past this many on one path are a loop (as the kernel's ELOOP). */
const MAX_LINKS = 40;

/**
 * The symbolic links `path` goes through, in order: each as the real folder that holds it and
 * its name there. The path itself, a folder on its way (`/srv/current/idl`, `current` a link)
 * and a link a link leads to all count. Stops where the path leads nowhere (the rest cannot be
 * known until it exists).
 */
export function linksOf(path: string): { dir: string; name: string }[] {
  const out: { dir: string; name: string }[] = [];
  const abs = resolve(path);
  let at = parse(abs).root;
  let rest = abs.slice(at.length).split(sep).filter(Boolean);
  while (rest.length > 0 && out.length < MAX_LINKS) {
    const name = rest[0] as string;
    const here = join(at, name);
    let link: string | undefined;
    try {
      link = lstatSync(here).isSymbolicLink() ? readlinkSync(here) : undefined;
    } catch {
      break;
    }
    if (link === undefined) {
      at = here;
      rest = rest.slice(1);
      continue;
    }
    out.push({ dir: at, name });
    // `at` has no link in it: a relative target's `..` is resolved as the kernel would.
    const target = resolve(at, link);
    at = parse(target).root;
    rest = [...target.slice(at.length).split(sep).filter(Boolean), ...rest.slice(1)];
  }
  return out;
}

/** What `after` serves that `before` did not and the reverse: services, their members, routes. */
export function changes(before: Catalog, after: Catalog): string[] {
  const out: string[] = [];
  const list = (label: string, names: readonly string[]): void => {
    if (names.length > 0) out.push(`${label}: ${names.join(", ")}`);
  };
  list("services added", minus(after.names(), before.names()));
  list("services removed", minus(before.names(), after.names()));
  const changed: string[] = [];
  for (const name of after.names()) {
    const was = before.service(name);
    const now = after.service(name);
    if (was === undefined || now === undefined || was === now) continue;
    const a = members(was.descriptor);
    const b = members(now.descriptor);
    const diff = [...minus(b, a).map((m) => `+${m}`), ...minus(a, b).map((m) => `-${m}`)];
    changed.push(diff.length > 0 ? `${name} (${diff.join(", ")})` : `${name} (types)`);
  }
  list("services changed", changed);
  list("routes added", minus(routeNames(after), routeNames(before)));
  list("routes removed", minus(routeNames(before), routeNames(after)));
  return out;
}

/**
 * Why services that `after` adds or changes cannot be reached: none of the transports they
 * allow is one the gateway opened (at start, `--transports` or the first IDL's). An App opens
 * its transports once, so that takes a restart.
 */
export function unreachable(after: Catalog, before: Catalog | undefined, open: readonly string[]): string[] {
  const out: string[] = [];
  for (const name of after.names()) {
    const svc = after.service(name);
    if (svc === undefined || svc === before?.service(name)) continue;
    const allowed = svc.descriptor.transports.filter((t) => t !== "local");
    if (allowed.length === 0 || allowed.some((t) => open.includes(t))) continue;
    const them = allowed.length === 1 ? allowed[0] : `one of ${allowed.join(", ")}`;
    out.push(
      `${name} is served on ${allowed.join(", ")}, which this gateway did not open (open: ${open.filter((t) => t !== "local").join(", ")}): its calls answer 503 and its streams are refused until the gateway restarts with ${them} in --transports`,
    );
  }
  return out;
}

function members(d: ServiceDescriptor): string[] {
  return [
    ...Object.values(d.methods).map((m) => `${m.kind} ${m.name}`),
    ...Object.keys(d.events).map((e) => `event ${e}`),
    ...Object.keys(d.states).map((s) => `state ${s}`),
  ];
}

function routeNames(c: Catalog): string[] {
  return c.routes.map((r) => `${r.verb} ${r.method.route?.path ?? ""}`);
}

function minus(a: readonly string[], b: readonly string[]): string[] {
  const drop = new Set(b);
  return a.filter((x) => !drop.has(x));
}
