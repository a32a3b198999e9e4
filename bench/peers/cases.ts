/**
 * Every case of `bench/peers`, by name, and the module that defines it: a worker imports only
 * its own case's module, so a Moleculer process never loads fan (or grpc-js) and its RSS is
 * its own.
 */
import type { EventsCase, PeerCase, RpcCase } from "./case.js";

export type CaseModule = "fan" | "moleculer" | "grpc";

interface Loaded {
  readonly rpc: readonly RpcCase[];
  readonly events: readonly EventsCase[];
}

export async function load(module: CaseModule): Promise<Loaded> {
  switch (module) {
    case "fan": {
      const m = await import("./fan.js");
      return { rpc: m.fanRpc, events: m.fanEvents };
    }
    case "moleculer": {
      const m = await import("./moleculer.js");
      return { rpc: m.moleculerRpc, events: m.moleculerEvents };
    }
    case "grpc": {
      const m = await import("./grpc.js");
      return { rpc: [m.grpcJs, m.connect], events: [] };
    }
  }
}

export const MODULES: readonly CaseModule[] = ["fan", "moleculer", "grpc"];

/** Every case with its module (loads every module: for the orchestrator). */
export async function allCases(): Promise<Array<{ readonly c: PeerCase; readonly module: CaseModule }>> {
  const out: Array<{ c: PeerCase; module: CaseModule }> = [];
  for (const module of MODULES) {
    const l = await load(module);
    for (const c of [...l.rpc, ...l.events]) out.push({ c, module });
  }
  return out;
}

export async function caseNamed(module: CaseModule, name: string): Promise<PeerCase> {
  const l = await load(module);
  const c = [...l.rpc, ...l.events].find((x) => x.name === name);
  if (c === undefined) throw new Error(`bench/peers: no case named "${name}" in ${module}.ts`);
  return c;
}
