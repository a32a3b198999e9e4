/**
 * `@auth` methods called as every HTTP client sends credentials, with the standard
 * `Authorization` header: through `fanc gateway` (in this process) and on Vault's own http
 * transport (Vault, fixtures/vault-service.ts, in a child process; its verifier knows "Bearer
 * open-sesame"). The header reaches the verifier as the envelope's `authorization`, as
 * `fan-h-authorization` does (which wins when both come); a browser's preflight may send it.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { CapturedChild } from "../cli/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { uniqueCluster, up } from "../transports/processes.js";
import { type LocalGateway, startGateway, startVault, stopChild, VAULT_IDL } from "./helpers.js";

const TOKEN = "Bearer open-sesame";

async function send(url: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: text === "" ? undefined : JSON.parse(text) };
}

describeWithBroker(
  up.etcd,
  "etcd",
  "gateway auth",
)("the Authorization header on the gateway and the http transport", () => {
  const cluster = uniqueCluster("gw-auth");
  let vault: CapturedChild | undefined;
  let gw: LocalGateway | undefined;
  let direct = "";

  beforeAll(async () => {
    vault = await startVault(cluster);
    direct = (/"http":"([^"]+)"/.exec(vault.stdout()) as RegExpExecArray)[1] as string;
    gw = await startGateway(cluster, ["--transports", "http", "--cors", "https://shop.example"], VAULT_IDL);
  }, 240_000);

  afterAll(async () => {
    await Promise.race([gw?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
    await stopChild(vault);
  }, 60_000);

  const surfaces = (): [string, string][] => [
    ["the gateway", gw?.url ?? ""],
    ["the http transport", direct],
  ];

  it("a route and a service path take credentials from Authorization", async () => {
    for (const [, base] of surfaces()) {
      expect(await send(`${base}/vault/whoami`, { headers: { authorization: TOKEN } })).toEqual({
        status: 200,
        body: { principal: "ada", authorization: TOKEN },
      });
      expect(
        await send(`${base}/vault/k1`, {
          method: "PUT",
          headers: { authorization: TOKEN, "content-type": "application/json" },
          body: '{"value":"v1"}',
        }),
      ).toEqual({ status: 200, body: "k1=v1" });
      expect(
        await send(`${base}/fan.vault.Vault/whoami`, { method: "POST", headers: { authorization: TOKEN }, body: "{}" }),
      ).toMatchObject({ status: 200, body: { principal: "ada" } });
      expect(
        await send(`${base}/fan.vault.Vault/note`, {
          method: "POST",
          headers: { authorization: TOKEN },
          body: '{"text":"hi"}',
        }),
      ).toEqual({
        status: 202,
        body: undefined,
      });
    }
  }, 60_000);

  it("no or wrong credentials are 401, and fan-h-authorization wins over Authorization", async () => {
    for (const [, base] of surfaces()) {
      const refused = {
        status: 401,
        body: { code: "UNAUTHENTICATED", message: "fan.vault.Vault.whoami requires credentials" },
      };
      expect(await send(`${base}/vault/whoami`)).toEqual(refused);
      expect(await send(`${base}/vault/whoami`, { headers: { authorization: "Bearer wrong" } })).toEqual(refused);
      expect(
        await send(`${base}/vault/whoami`, {
          headers: { authorization: "Bearer wrong", "fan-h-authorization": TOKEN },
        }),
      ).toMatchObject({ status: 200, body: { authorization: TOKEN } });
      expect(
        await send(`${base}/vault/whoami`, {
          headers: { authorization: TOKEN, "fan-h-authorization": "Bearer wrong" },
        }),
      ).toEqual(refused);
    }
  }, 60_000);

  it("a browser's preflight may send Authorization", async () => {
    const pre = await fetch(`${gw?.url}/vault/whoami`, {
      method: "OPTIONS",
      headers: {
        origin: "https://shop.example",
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
      },
    });
    expect(pre.status).toBe(204);
    const allowed = (pre.headers.get("access-control-allow-headers") ?? "").split(",").map((h) => h.trim());
    expect(allowed).toContain("authorization");
  }, 30_000);
});
