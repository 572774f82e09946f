/**
 * Glue between @bufbuild/protobuf's typed service descriptors and @grpc/grpc-js:
 * a grpc-js service definition whose (de)serializers are the generated messages'
 * binary codecs, the matching typed client, and the mapping between PosternError
 * codes and gRPC status codes so a refusal keeps its code and message across the wire.
 */
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { PosternError } from '../../protocols/errors.ts';

/** Largest message either side accepts; resources and audit pages stay well below it. */
export const maxMessageBytes = 16 * 1024 * 1024;

/** Builds the grpc-js definition for a generated service (unary methods only). */
export function serviceDefinition<M extends GenServiceMethods>(service: GenService<M>): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<MessageShape<DescMessage>, MessageShape<DescMessage>>> = {};
  for (const method of service.methods) {
    if (method.methodKind !== 'unary') throw new Error(`${service.typeName}.${method.name}: only unary methods are supported`);
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (message: MessageShape<DescMessage>) => Buffer.from(toBinary(method.input, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (message: MessageShape<DescMessage>) => Buffer.from(toBinary(method.output, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

type Input<M extends GenServiceMethods, K extends keyof M> = MessageShape<M[K]['input']>;
type Output<M extends GenServiceMethods, K extends keyof M> = MessageShape<M[K]['output']>;
type OutputInit<M extends GenServiceMethods, K extends keyof M> = MessageInitShape<M[K]['output']>;
type InputInit<M extends GenServiceMethods, K extends keyof M> = MessageInitShape<M[K]['input']>;

/** A server implementation: one async function per method, given the caller context. */
export type ServiceHandlers<M extends GenServiceMethods, Ctx> = {
  [K in keyof M]: (request: Input<M, K>, context: Ctx) => Promise<OutputInit<M, K>>;
};

/** A typed promise client: one async function per method. */
export type ServiceClient<M extends GenServiceMethods> = {
  [K in keyof M]: (request: InputInit<M, K>, options?: CallOptions) => Promise<Output<M, K>>;
};

const statusByCode: Record<string, grpc.status> = {
  PST_NOT_FOUND: grpc.status.NOT_FOUND,
  PST_ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  PST_COMPARE_FAILED: grpc.status.ABORTED,
  PST_BAD_INPUT: grpc.status.INVALID_ARGUMENT,
  PST_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PST_ACCESS_DENIED: grpc.status.PERMISSION_DENIED,
};

/** Per-call options of a typed client method. */
export interface CallOptions {
  deadlineMs?: number;
  /**
   * The end user's address when a proxy relays a call made on their behalf (login,
   * join, sign-up); the server believes it only from a proxy (see clientAddrHeader).
   */
  clientAddr?: string;
}

/** Metadata key carrying {@link CallOptions.clientAddr}. */
export const clientAddrHeader = 'postern-client-addr';

/** Turns a thrown error into a gRPC error that keeps the Postern code in metadata. */
export function toServiceError(error: unknown): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (error instanceof PosternError) {
    metadata.set('postern-code', error.code);
    const code = statusByCode[error.code] ?? grpc.status.FAILED_PRECONDITION;
    return Object.assign(new Error(error.message), { code, details: error.message, metadata });
  }
  // An unexpected failure: the caller learns only that it was internal; the server logs it.
  metadata.set('postern-code', 'PST_INTERNAL');
  return Object.assign(new Error('internal error in the auth service; see its log'), {
    code: grpc.status.INTERNAL,
    details: 'internal error in the auth service; see its log',
    metadata,
  });
}

/** Turns a gRPC error back into a PosternError with the server's code and message. */
export function fromServiceError(error: grpc.ServiceError): PosternError {
  const code = error.metadata?.get('postern-code')[0];
  if (typeof code === 'string') return new PosternError(code, error.details);
  if (error.code === grpc.status.UNAVAILABLE) {
    return new PosternError('PST_UNAVAILABLE', `the auth service cannot be reached: ${error.details}`);
  }
  return new PosternError('PST_RPC', error.details || error.message);
}

/** Registers typed handlers on a grpc-js server; `context` derives the caller from each call. */
export function addService<M extends GenServiceMethods, Ctx>(
  server: grpc.Server,
  service: GenService<M>,
  handlers: ServiceHandlers<M, Ctx>,
  context: (call: grpc.ServerUnaryCall<unknown, unknown>) => Ctx,
  onError: (method: string, error: unknown) => void,
  onDone: (method: string, code: string, seconds: number) => void = () => {},
): void {
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = handlers[method.localName as keyof M];
    const unary: grpc.handleUnaryCall<never, unknown> = (call, callback) => {
      const started = performance.now();
      const fail = (error: unknown) => {
        if (!(error instanceof PosternError)) onError(method.name, error);
        onDone(method.name, error instanceof PosternError ? error.code : 'PST_INTERNAL', (performance.now() - started) / 1000);
        callback(toServiceError(error));
      };
      let ctx: Ctx;
      try {
        ctx = context(call);
      } catch (error) {
        fail(error);
        return;
      }
      handler(call.request, ctx).then((output) => {
        onDone(method.name, 'OK', (performance.now() - started) / 1000);
        callback(null, create(method.output, output as MessageInitShape<DescMessage>));
      }, fail);
    };
    implementation[method.localName] = unary as grpc.UntypedHandleCall;
  }
  server.addService(serviceDefinition(service), implementation);
}

/** Creates a typed promise client over a grpc-js channel. */
export function createClient<M extends GenServiceMethods>(
  service: GenService<M>,
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ClientOptions = {},
): { client: ServiceClient<M>; close(): void } {
  const Constructor = grpc.makeGenericClientConstructor(serviceDefinition(service), service.typeName);
  const raw = new Constructor(address, credentials, {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    ...options,
  });
  const client = {} as Record<string, unknown>;
  for (const method of service.methods) {
    const call = raw[method.localName] as (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<unknown>) => void;
    client[method.localName] = (request: MessageInitShape<DescMessage>, callOptions?: CallOptions) =>
      new Promise((resolve, reject) => {
        const deadline = new Date(Date.now() + (callOptions?.deadlineMs ?? 30_000));
        const metadata = new grpc.Metadata();
        if (callOptions?.clientAddr) metadata.set(clientAddrHeader, callOptions.clientAddr);
        call.call(raw, create(method.input, request), metadata, { deadline }, (error, response) => {
          if (error) reject(fromServiceError(error));
          else resolve(response);
        });
      });
  }
  return { client: client as ServiceClient<M>, close: () => raw.close() };
}
