import { BlockList, isIP } from "node:net";
import { InterceptingCall, type ChannelCredentials, type Interceptor } from "@grpc/grpc-js";

/** The environment variable a client takes its bearer token from when given none. */
export const TOKEN_ENV = "LOOPER_TOKEN";

/** The token to send: the option's, else LOOPER_TOKEN's; undefined when there is none. */
export function resolveToken(token: string | undefined): string | undefined {
  const chosen = token?.trim() || process.env[TOKEN_ENV]?.trim();
  return chosen || undefined;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** Whether a host:port target names this host; a name that would need resolving does not. */
export function isLoopback(target: string): boolean {
  const colon = target.lastIndexOf(":");
  let host = colon < 0 ? target : target.slice(0, colon);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "localhost") return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? "ipv4" : "ipv6");
}

/**
 * Refuses a token that would cross the network in the clear: without TLS every target must
 * be loopback (localhost, 127.0.0.0/8 or ::1).
 */
export function checkTokenTransport(credentials: ChannelCredentials, targets: string[]): void {
  if (credentials._isSecure()) return;
  const remote = targets.find((t) => !isLoopback(t));
  if (remote !== undefined) {
    throw new Error(`refusing to send a bearer token without TLS to ${remote}: ` +
      "pass `tls` or `credentials` for a service that is not on this host");
  }
}

/**
 * A grpc-js interceptor that puts `authorization: Bearer <token>` on every call. It works on
 * insecure channels too (grpc-js refuses call credentials there), so the constructor checks
 * the transport first.
 */
export function bearerTokenInterceptor(token: string): Interceptor {
  const header = `Bearer ${token}`;
  return (options, nextCall) => new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set("authorization", header);
      next(metadata, listener);
    },
  });
}
