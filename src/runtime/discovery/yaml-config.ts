/**
 * A ConfigSource over a YAML (or JSON) file whose top-level keys are service names:
 *
 * ```yaml
 * retail.wines.PublicWines:
 *   pageSize: 50
 *   apiKey: secret
 * ```
 *
 * The file is watched (stat polling, which survives editors that replace the file); a change
 * notifies the services whose config changed. The poll compares each stat with the one taken
 * when the file was last read (not with the poller's own first stat, as `fs.watchFile` does),
 * so an edit made between the first read and the poller's start is not missed. A file that no longer parses is logged and the
 * old values are kept. `update` writes the file back (atomically: temp file, then rename).
 */
import { readFile, rename, stat, writeFile } from "node:fs/promises";
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import { pino } from "pino";
import { parse, stringify } from "yaml";
import { ObjectConfigSource, checkPatch, likelySection, mergeTop, type ConfigObjects } from "./config.js";
import type { ConfigSource } from "./types.js";

/** Options of a YAML config source. */
export interface YamlConfigOptions {
  readonly log?: Logger;
  /** Stat polling interval, ms (default 250). */
  readonly pollMs?: number;
}

/** Parses config file text (YAML or JSON) into objects by service; throws a clear error otherwise. */
export function parseConfigText(text: string, where: string): ConfigObjects {
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    throw new SyntaxError(`${where}: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc))
    throw new TypeError(`${where}: the top level must map service names to config objects`);
  const out: ConfigObjects = {};
  for (const [service, raw] of Object.entries(doc as Record<string, unknown>)) {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new TypeError(`${where}: the config of ${service} must be an object`);
    }
    out[service] = checkPatch(service, raw);
  }
  return out;
}

/** A ConfigSource over a watched YAML file. */
export class YamlConfigSource implements ConfigSource {
  private readonly inner: ObjectConfigSource;
  private current: ConfigObjects = {};
  private loaded: Promise<void> | undefined;
  private watching = false;
  /** The file's stat when it was last read ("" before, "absent" when it did not exist). */
  private seen = "";
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private readonly log: Logger;
  private writes: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly opts: YamlConfigOptions = {},
  ) {
    this.log = opts.log ?? pino({ level: "silent" });
    this.inner = new ObjectConfigSource({}, this.log);
  }

  async get(service: string): Promise<Record<string, unknown>> {
    await this.load();
    return this.inner.get(service);
  }

  async absence(service: string): Promise<string | undefined> {
    await this.load();
    if (Object.hasOwn(this.current, service)) return undefined;
    if (this.seen === "absent") return `there is no config file at ${this.path}`;
    return noSection(this.path, service, Object.keys(this.current));
  }

  /** `absence`, when the file has a section likely meant for `service` (its short name, a typo). */
  async misplaced(service: string): Promise<string | undefined> {
    await this.load();
    const sections = Object.keys(this.current);
    if (Object.hasOwn(this.current, service) || likelySection(service, sections) === undefined) return undefined;
    return noSection(this.path, service, sections);
  }

  async update(service: string, patch: Record<string, unknown>): Promise<void> {
    checkPatch(service, patch);
    await this.load();
    const run = this.writes.then(async () => {
      const next = { ...this.current, [service]: mergeTop(this.current[service] ?? {}, patch) };
      await this.write(next);
      await this.apply(next);
    });
    this.writes = run.catch(() => undefined);
    await run;
  }

  async watch(service: string, fn: (raw: Record<string, unknown>) => void): Promise<() => Promise<void>> {
    await this.load();
    this.startWatching();
    return this.inner.watch(service, fn);
  }

  async close(): Promise<void> {
    clearInterval(this.poller);
    this.watching = false;
    await this.inner.close();
  }

  private load(): Promise<void> {
    this.loaded ??= this.readFile().then((objs) => this.apply(objs));
    this.loaded.catch(() => (this.loaded = undefined));
    return this.loaded;
  }

  private async readFile(): Promise<ConfigObjects> {
    let text: string;
    this.seen = await fileStat(this.path);
    try {
      text = await readFile(this.path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw new Error(`cannot read config file ${this.path}: ${(e as Error).message}`);
    }
    return parseConfigText(text, this.path);
  }

  private async write(objs: ConfigObjects): Promise<void> {
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, stringify(objs), "utf8");
    await rename(tmp, this.path);
  }

  /** Takes a new whole-file state and notifies the services whose config changed. */
  private async apply(objs: ConfigObjects): Promise<void> {
    const before = this.current;
    this.current = objs;
    for (const service of new Set([...Object.keys(before), ...Object.keys(objs)])) {
      if (!isDeepStrictEqual(before[service], objs[service])) await this.inner.replace(service, objs[service] ?? {});
    }
  }

  private startWatching(): void {
    if (this.watching) return;
    this.watching = true;
    this.poller = setInterval(() => void this.poll(), this.opts.pollMs ?? 250);
    this.poller.unref();
  }

  /** Reloads when the file's stat differs from the one taken when it was last read. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      if ((await fileStat(this.path)) !== this.seen) await this.reload();
    } finally {
      this.polling = false;
    }
  }

  private async reload(): Promise<void> {
    try {
      await this.apply(await this.readFile());
    } catch (e) {
      this.log.error({ err: e, path: this.path }, "config file change rejected (kept the old values)");
    }
  }
}

/**
 * `settings.yml has no section shop.catalog.Catalog (its top-level keys are services' full
 * names); its sections: Catalog; did you mean Catalog? Rename it to shop.catalog.Catalog`: the
 * file's sections, and the one most likely meant (the short name, another package, a typo).
 */
export function noSection(path: string, service: string, sections: readonly string[]): string {
  const head = `${path} has no section ${service} (its top-level keys are services' full names)`;
  if (sections.length === 0) return `${head}; it has no sections`;
  const meant = likelySection(service, sections);
  const hint = meant === undefined ? "" : `; did you mean ${meant}? Rename it to ${service}`;
  return `${head}; its sections: ${sections.join(", ")}${hint}`;
}

/** What tells one version of the file from another: inode, size, modification and change times. */
async function fileStat(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch {
    return "absent";
  }
}
