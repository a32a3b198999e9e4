#!/usr/bin/env node
// Packages the extension as a .vsix (a zip in the VS Code Marketplace layout):
//   node editors/vscode/package-vsix.mjs [--out <file.vsix>]
// It installs the extension's one runtime dependency (vscode-languageclient) into a staging
// folder with npm, then writes [Content_Types].xml, extension.vsixmanifest and extension/**.
//
// Why not `vsce package`: @vscode/vsce 4 brings @azure/identity, a native keyring
// (@napi-rs/keyring), a signing tool with per-platform binaries and secretlint, 100+ packages
// to write one zip; this script needs only Node (zlib) and npm, and works wherever npm reaches
// the registry. The layout is the one vsce writes, and `code --install-extension` takes it.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateRawSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));
const outArg = process.argv.indexOf("--out");
const out = resolve(outArg > 0 ? process.argv[outArg + 1] : `${pkg.name}-${pkg.version}.vsix`);
const FILES = ["package.json", "extension.js", "language-configuration.json", "README.md", "syntaxes/fan.tmLanguage.json"];

function main() {
  const stage = mkdtempSync(join(tmpdir(), "fan-vsix-"));
  try {
  for (const f of FILES) cpSync(join(here, f), join(stage, f), { recursive: true });
  execFileSync("npm", ["install", "--omit=dev", "--no-package-lock", "--ignore-scripts", "--no-audit", "--no-fund"], {
    cwd: stage,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const files = walk(stage).map((abs) => ({ abs, rel: relative(stage, abs).split(sep).join("/") }));
  const entries = [
    { name: "[Content_Types].xml", data: Buffer.from(contentTypes(files.map((f) => f.rel))) },
    { name: "extension.vsixmanifest", data: Buffer.from(manifest()) },
    ...files.map((f) => ({ name: `extension/${f.rel}`, data: readFileSync(f.abs) })),
  ];
  writeFileSync(out, zip(entries));
  console.log(`${relative(process.cwd(), out) || out}: ${entries.length} files, ${statSync(out).size} bytes`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const abs = join(dir, e.name);
    if (e.isDirectory()) return e.name === ".bin" ? [] : walk(abs);
    return e.isFile() ? [abs] : [];
  });
}

function xml(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const TYPES = { ".json": "application/json", ".js": "application/javascript", ".md": "text/markdown", ".txt": "text/plain", ".vsixmanifest": "text/xml", ".xml": "text/xml" };

function contentTypes(rels) {
  const exts = new Set([".vsixmanifest", ".xml"]);
  const overrides = [];
  for (const r of rels) {
    const ext = extname(r);
    if (ext === "") overrides.push(`<Override PartName="/extension/${xml(r)}" ContentType="text/plain"/>`);
    else exts.add(ext.toLowerCase());
  }
  const defaults = [...exts].sort().map((e) => `<Default Extension="${xml(e)}" ContentType="${TYPES[e] ?? "application/octet-stream"}"/>`);
  return `<?xml version="1.0" encoding="utf-8"?>\n<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">${defaults.join("")}${overrides.join("")}</Types>\n`;
}

function manifest() {
  return `<?xml version="1.0" encoding="utf-8"?>
<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011" xmlns:d="http://schemas.microsoft.com/developer/vsx-schema-design/2011">
  <Metadata>
    <Identity Language="en-US" Id="${xml(pkg.name)}" Version="${xml(pkg.version)}" Publisher="${xml(pkg.publisher)}" />
    <DisplayName>${xml(pkg.displayName)}</DisplayName>
    <Description xml:space="preserve">${xml(pkg.description)}</Description>
    <Tags>fan,idl,${xml(pkg.contributes.languages[0].id)}</Tags>
    <Categories>${xml(pkg.categories.join(","))}</Categories>
    <GalleryFlags>Public</GalleryFlags>
    <Properties>
      <Property Id="Microsoft.VisualStudio.Code.Engine" Value="${xml(pkg.engines.vscode)}" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionDependencies" Value="" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionPack" Value="" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionKind" Value="workspace" />
      <Property Id="Microsoft.VisualStudio.Code.LocalizedLanguages" Value="" />
    </Properties>
  </Metadata>
  <Installation>
    <InstallationTarget Id="Microsoft.VisualStudio.Code" />
  </Installation>
  <Dependencies />
  <Assets>
    <Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" Addressable="true" />
    <Asset Type="Microsoft.VisualStudio.Services.Content.Details" Path="extension/README.md" Addressable="true" />
  </Assets>
</PackageManifest>
`;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip archive (deflate, no extras; fixed 1980-01-01 timestamps so the output is reproducible). */
function zip(entries) {
  const parts = [];
  const central = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    const data = deflateRawSync(e.data);
    const crc = crc32(e.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    parts.push(local, name, data);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(0x0800, 8);
    cd.writeUInt16LE(8, 10);
    cd.writeUInt16LE(0, 12);
    cd.writeUInt16LE(0x21, 14);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(data.length, 20);
    cd.writeUInt32LE(e.data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset, 42);
    central.push(cd, name);
    offset += local.length + name.length + data.length;
  }
  const cdSize = central.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, ...central, end]);
}

main();
