/**
 * grpc-js and Connect cases: unary `Pricing.Quote` over HTTP/2, protobuf on the wire (Connect
 * speaks its own protocol, the default of connect-node).
 * grpc-js loads `pricing.proto` at run time (@grpc/proto-loader); Connect gets the same
 * service as a descriptor built at run time (no protoc step), which is what generated code
 * would hand it.
 */
import { fileURLToPath } from "node:url";
import { create, createFileRegistry } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createServer as createH2 } from "node:http2";
import type { CaseContext, ClientSide, RpcCase, ServerSide } from "./case.js";
import { type QuoteReq, REQUEST, work } from "./service.js";

interface GrpcPricing extends grpc.Client {
  Quote(req: QuoteReq, cb: (err: grpc.ServiceError | null, res?: unknown) => void): grpc.ClientUnaryCall;
}

const proto = () => {
  const def = protoLoader.loadSync(fileURLToPath(new URL("./pricing.proto", import.meta.url)), { keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    bench: { Pricing: grpc.ServiceClientConstructor };
  };
  return pkg.bench.Pricing;
};

export const grpcJs: RpcCase = {
  kind: "rpc",
  name: "grpc-js",
  medium: "http",
  fan: false,
  serve: async (ctx: CaseContext): Promise<ServerSide> => {
    const server = new grpc.Server();
    server.addService(proto().service, {
      Quote: (call: grpc.ServerUnaryCall<QuoteReq, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, work(call.request)),
    });
    await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${ctx.port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    return { close: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
  },
  client: async (ctx: CaseContext): Promise<ClientSide> => {
    const Pricing = proto();
    const client = new Pricing(`127.0.0.1:${ctx.port}`, grpc.credentials.createInsecure()) as unknown as GrpcPricing;
    const op = () =>
      new Promise((resolve, reject) => {
        client.Quote(REQUEST, (err, res) => (err ? reject(err) : resolve(res)));
      });
    return { op, close: async () => client.close() };
  },
};

/** `bench.Pricing` as a protobuf-es descriptor, built the way protoc would describe pricing.proto. */
function connectService() {
  const { STRING, INT32, DOUBLE } = FieldDescriptorProto_Type;
  const field = (name: string, number: number, type: FieldDescriptorProto_Type) => ({
    name,
    number,
    type,
    label: FieldDescriptorProto_Label.OPTIONAL,
    jsonName: name,
  });
  const file = create(FileDescriptorProtoSchema, {
    name: "bench/pricing.proto",
    package: "bench",
    syntax: "proto3",
    messageType: [
      {
        name: "QuoteReq",
        field: [field("symbol", 1, STRING), field("quantity", 2, INT32), field("price", 3, DOUBLE)],
      },
      { name: "Quote", field: [field("symbol", 1, STRING), field("total", 2, DOUBLE)] },
    ],
    service: [{ name: "Pricing", method: [{ name: "Quote", inputType: ".bench.QuoteReq", outputType: ".bench.Quote" }] }],
  });
  const service = createFileRegistry(file, () => undefined).getService("bench.Pricing");
  if (service === undefined) throw new Error("bench.Pricing is missing from the registry built for Connect");
  return service;
}

export const connect: RpcCase = {
  kind: "rpc",
  name: "Connect (connect-node, HTTP/2)",
  medium: "http",
  fan: false,
  serve: async (ctx: CaseContext): Promise<ServerSide> => {
    const service = connectService();
    const handler = connectNodeAdapter({
      routes: (router) => router.service(service, { quote: (req: unknown) => work(req as QuoteReq) } as never),
    });
    const server = createH2(handler);
    await new Promise<void>((r) => server.listen(ctx.port, "127.0.0.1", r));
    return { close: () => new Promise<void>((r) => server.close(() => r())) };
  },
  client: async (ctx: CaseContext): Promise<ClientSide> => {
    const service = connectService();
    const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${ctx.port}`, httpVersion: "2" });
    const client = createClient(service, transport) as unknown as { quote(req: QuoteReq): Promise<unknown> };
    return { op: () => client.quote(REQUEST), close: async () => undefined };
  },
};
