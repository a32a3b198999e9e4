/** Every case of `bench/peers`, by name. */
import type { EventsCase, PeerCase, RpcCase } from "./case.js";
import { fanEvents, fanRpc } from "./fan.js";
import { connect, grpcJs } from "./grpc.js";
import { moleculerEvents, moleculerRpc } from "./moleculer.js";

export const rpcCases: readonly RpcCase[] = [...fanRpc, ...moleculerRpc, grpcJs, connect];
export const eventsCases: readonly EventsCase[] = [...fanEvents, ...moleculerEvents];

export function caseNamed(name: string): PeerCase {
  const c = [...rpcCases, ...eventsCases].find((x) => x.name === name);
  if (c === undefined) throw new Error(`bench/peers: no case named "${name}"`);
  return c;
}
