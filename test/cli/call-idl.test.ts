/**
 * `fanc call`'s refusals that need no registry, in-process: an ambiguous short service name,
 * an IDL with errors, a missing IDL folder (exit 2, nothing opened: the discovery given is
 * unreachable, so reaching for it would fail differently).
 */
import { afterEach, expect, it } from "vitest";
import { run } from "../../src/cli/call.js";
import { captureIo, TempDir } from "./helpers.js";

const dirs: TempDir[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.cleanup();
});

const OFF = ["--discovery", "etcd://127.0.0.1:1"];

it("refuses an ambiguous short name, listing the candidates; a longer suffix picks one", async () => {
  const d = new TempDir();
  dirs.push(d);
  d.write("a.fan", "package lab.a\n\nservice Svc {\n  rpc m(n: int): int\n}\n");
  d.write("b.fan", "package lab.b\n\nservice Svc {\n  rpc m(n: int): int\n}\n");
  const io = captureIo();
  expect(await run(["Svc.m", "{}", "--idl", d.path, ...OFF], io)).toBe(2);
  expect(io.errText()).toBe('fanc call: "Svc" is ambiguous: lab.a.Svc, lab.b.Svc');
  const io2 = captureIo();
  expect(await run(["a.Svc.m", '{"n":"x"}', "--idl", d.path, ...OFF], io2)).toBe(2);
  expect(io2.errText()).toContain("fanc call: invalid argument n: expected an int");
});

it("refuses an IDL with errors, printing its diagnostics, and a missing folder", async () => {
  const d = new TempDir();
  dirs.push(d);
  d.write("bad.fan", "package lab\n\nservice Svc {\n  rpc m(n: Missing): int\n}\n");
  const io = captureIo();
  expect(await run(["Svc.m", "{}", "--idl", d.path, ...OFF], io)).toBe(2);
  expect(io.errText()).toContain(`the IDL under ${d.path} has errors:`);
  expect(io.errText()).toContain("Missing");
  const io2 = captureIo();
  expect(await run(["Svc.m", "{}", "--idl", `${d.path}/nope`, ...OFF], io2)).toBe(2);
  expect(io2.errText()).toContain("cannot read the IDL folder");
});
