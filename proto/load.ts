// Loads the CRI v1 API (proto/api.proto) with protobufjs and exposes the two
// service definitions plus generic client constructors.
//
// The definitions are built here as @grpc/proto-loader builds them (the same
// serializers, the same toObject options), without its one costly extra: the
// FileDescriptorProtos it encodes for every method, for gRPC reflection, which
// podchart does not serve. That was 43 of the 113 ms the load took at each
// daemon start (issue 14: startup and restore time).

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

/** Proto package the CRI v1 services live in. */
export const CRI_PACKAGE = 'runtime.v1';

/**
 * Locate api.proto. The compiled module lives at <repo>/dist/proto/load.js
 * while the .proto stays at <repo>/proto/api.proto; when this module is run
 * from source (<repo>/proto/load.ts) the .proto is its sibling. As a last
 * resort walk up to the directory holding package.json.
 */
function resolveProtoPath(): string {
  const candidates: string[] = [
    fileURLToPath(new URL('../../proto/api.proto', import.meta.url)),
    fileURLToPath(new URL('./api.proto', import.meta.url)),
  ];
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) {
      candidates.push(path.join(dir, 'proto', 'api.proto'));
      break;
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  const found = candidates.find((p) => existsSync(p));
  // Fall back to the dist layout so error messages name the expected path.
  return found ?? (candidates[0] as string);
}

/** Absolute path of proto/api.proto. */
export const PROTO_PATH: string = resolveProtoPath();

/** How messages are handed to handlers (proto-loader's options): camelCase fields, string enums and longs, defaults set, oneofs named. */
export const LOADER_OPTIONS: protobuf.IConversionOptions & { keepCase: boolean } = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export interface CriDefinitions {
  runtimeService: grpc.ServiceDefinition;
  imageService: grpc.ServiceDefinition;
  RuntimeServiceClient: grpc.ServiceClientConstructor;
  ImageServiceClient: grpc.ServiceClientConstructor;
}

let cached: CriDefinitions | undefined;

/** A service's methods as grpc-js takes them: proto-loader's createMethodDefinition, less the descriptors. */
function serviceDefinition(root: protobuf.Root, name: string): grpc.ServiceDefinition {
  const service = root.lookupService(`${CRI_PACKAGE}.${name}`);
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of service.methodsArray) {
    const request = method.resolvedRequestType as protobuf.Type;
    const response = method.resolvedResponseType as protobuf.Type;
    definition[method.name] = {
      path: `/${CRI_PACKAGE}.${name}/${method.name}`,
      requestStream: Boolean(method.requestStream),
      responseStream: Boolean(method.responseStream),
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response),
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
  }
  return definition;
}

function serializer(type: protobuf.Type): (value: object) => Buffer {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    // protobufjs writes into a Buffer under Node (its BufferWriter): no copy.
    return type.encode(type.fromObject(value)).finish() as Buffer;
  };
}

function deserializer(type: protobuf.Type): (bytes: Buffer) => object {
  return (bytes) => type.toObject(type.decode(bytes), LOADER_OPTIONS);
}

/** Load (once) and return the CRI v1 service definitions and client constructors. */
export function loadCri(): CriDefinitions {
  if (cached) return cached;
  const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: LOADER_OPTIONS.keepCase });
  root.resolveAll();
  const RuntimeServiceClient = grpc.makeGenericClientConstructor(serviceDefinition(root, 'RuntimeService'), 'RuntimeService');
  const ImageServiceClient = grpc.makeGenericClientConstructor(serviceDefinition(root, 'ImageService'), 'ImageService');
  cached = {
    runtimeService: RuntimeServiceClient.service,
    imageService: ImageServiceClient.service,
    RuntimeServiceClient,
    ImageServiceClient,
  };
  return cached;
}
