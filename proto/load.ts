// Loads the CRI v1 API (proto/api.proto) through @grpc/proto-loader and
// exposes the two service definitions plus generic client constructors.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

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

/** Options passed to @grpc/proto-loader (camelCase fields, string enums/longs). */
export const LOADER_OPTIONS: protoLoader.Options = {
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

function lookup(root: grpc.GrpcObject, dotted: string): unknown {
  let node: unknown = root;
  for (const part of dotted.split('.')) {
    if (node === null || typeof node !== 'object' && typeof node !== 'function') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function serviceCtor(root: grpc.GrpcObject, name: string): grpc.ServiceClientConstructor {
  const ctor = lookup(root, `${CRI_PACKAGE}.${name}`);
  if (typeof ctor !== 'function' || !('service' in ctor)) {
    throw new Error(`${PROTO_PATH}: service ${CRI_PACKAGE}.${name} not found`);
  }
  return ctor as grpc.ServiceClientConstructor;
}

/** Load (once) and return the CRI v1 service definitions and client constructors. */
export function loadCri(): CriDefinitions {
  if (cached) return cached;
  const packageDefinition = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
  const root = grpc.loadPackageDefinition(packageDefinition);
  const RuntimeServiceClient = serviceCtor(root, 'RuntimeService');
  const ImageServiceClient = serviceCtor(root, 'ImageService');
  cached = {
    runtimeService: RuntimeServiceClient.service,
    imageService: ImageServiceClient.service,
    RuntimeServiceClient,
    ImageServiceClient,
  };
  return cached;
}
