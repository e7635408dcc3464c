package dev.looper.client;

import com.google.common.net.InetAddresses;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.InsecureChannelCredentials;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;

/**
 * Puts {@code authorization: Bearer <token>} on every call of a channel. {@link LooperClient}
 * adds it to its channels; it also serves a channel of your own for the generated stubs (e.g.
 * {@code AccessServiceGrpc}), after {@link #checkTransport} has allowed the channel.
 */
public final class BearerToken implements ClientInterceptor {
  /** The environment variable a client takes its token from when given none. */
  public static final String ENV = "LOOPER_TOKEN";

  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final String header;

  /** An interceptor sending {@code token}, which must not be blank. */
  public BearerToken(String token) {
    if (token == null || token.isBlank()) {
      throw new IllegalArgumentException("the bearer token is empty");
    }
    this.header = "Bearer " + token.strip();
  }

  /**
   * Refuses a token that would cross the network in the clear: without TLS ({@code
   * credentials} insecure) every target must be loopback (localhost, 127.0.0.0/8 or ::1).
   *
   * @throws IllegalArgumentException naming the first target that is not
   */
  public static void checkTransport(ChannelCredentials credentials, String... targets) {
    if (!(credentials instanceof InsecureChannelCredentials)) {
      return;
    }
    for (String target : targets) {
      if (!isLoopback(target)) {
        throw new IllegalArgumentException("refusing to send a bearer token without TLS to " + target
            + ": use useTls() or credentials(...) for a service that is not on this host");
      }
    }
  }

  /** Whether a host:port target names this host; a name that would need resolving does not. */
  static boolean isLoopback(String target) {
    int colon = target.lastIndexOf(':');
    String host = colon < 0 ? target : target.substring(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    if (host.equals("localhost")) {
      return true;
    }
    return InetAddresses.isInetAddress(host) && InetAddresses.forString(host).isLoopbackAddress();
  }

  @Override
  public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
      MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
    return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
      @Override
      public void start(Listener<RespT> listener, Metadata headers) {
        headers.put(AUTHORIZATION, header);
        super.start(listener, headers);
      }
    };
  }
}
