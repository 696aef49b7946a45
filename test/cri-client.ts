/** A CRI v1 client on a unix socket, for the end-to-end tests: the same wire kubelet speaks. */
import * as grpc from '@grpc/grpc-js';
import { loadCri } from '../proto/load.js';

export type Reply = Record<string, unknown>;

export class CriClient {
  readonly runtime: grpc.Client;
  readonly image: grpc.Client;

  /** `authority`: the HTTP/2 :authority to send, e.g. the socket path as Go clients of kubelet 1.26 do. */
  constructor(readonly socket: string, authority?: string) {
    const cri = loadCri();
    // kubelet's own receive limit: every reply must fit it (ExecSync's output is capped to).
    const options: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 16 * 1024 * 1024 };
    if (authority !== undefined) options['grpc.default_authority'] = authority;
    this.runtime = new cri.RuntimeServiceClient(`unix://${socket}`, grpc.credentials.createInsecure(), options);
    this.image = new cri.ImageServiceClient(`unix://${socket}`, grpc.credentials.createInsecure(), options);
  }

  /** Calls a unary RuntimeService method; rejects with the grpc ServiceError (code, details). */
  call<T = Reply>(method: string, request: object = {}, timeoutMs = 60_000): Promise<T> {
    return this.invoke(this.runtime, method, request, timeoutMs);
  }

  callImage<T = Reply>(method: string, request: object = {}, timeoutMs = 60_000): Promise<T> {
    return this.invoke(this.image, method, request, timeoutMs);
  }

  /** Calls a server-streaming method; resolves with every message it sent, once it ends. */
  stream<T = Reply>(service: 'runtime' | 'image', method: string, request: object = {}, timeoutMs = 60_000): Promise<T[]> {
    const client = service === 'runtime' ? this.runtime : this.image;
    const fn = (client as unknown as Record<string, unknown>)[method];
    if (typeof fn !== 'function') return Promise.reject(new Error(`no such method ${method}`));
    return new Promise((resolve, reject) => {
      const call = (fn as (req: object, opts: grpc.CallOptions) => grpc.ClientReadableStream<T>).call(client, request, { deadline: Date.now() + timeoutMs });
      const messages: T[] = [];
      call.on('data', (m: T) => messages.push(m));
      call.on('error', reject);
      call.on('end', () => resolve(messages));
    });
  }

  private invoke<T>(client: grpc.Client, method: string, request: object, timeoutMs: number): Promise<T> {
    const fn = (client as unknown as Record<string, unknown>)[method];
    if (typeof fn !== 'function') return Promise.reject(new Error(`no such method ${method}`));
    return new Promise((resolve, reject) => {
      (fn as (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: T) => void) => void).call(
        client,
        request,
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(err) : resolve(res)),
      );
    });
  }

  close(): void {
    this.runtime.close();
    this.image.close();
  }
}
