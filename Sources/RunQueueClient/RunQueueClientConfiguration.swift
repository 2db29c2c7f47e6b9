import RunQueueCore
import UVLoop

/// How a `RunQueueClient` connects and how long its calls may take.
public struct RunQueueClientConfiguration: Sendable {
    /// The server (numeric host and port).
    public var server: SocketAddress
    /// Pooled connections; calls are spread over them round-robin. At least 1.
    public var connections: Int = 2
    /// Sent in `Hello` on every (re)connect; the server ignores it today
    /// (tokens are not implemented).
    public var token: String = ""
    /// Sent in `Hello`; the server ignores it today.
    public var clientName: String = "runqueue-swift"
    /// Deadline of every call that does not pass its own `timeout`; nil = none.
    /// For `dequeue` the long-poll wait is added to it.
    public var defaultTimeout: Duration?
    /// Bound on one TCP connect plus its `Hello`.
    public var connectTimeout: Duration = .seconds(5)
    /// How long a call waits for a connection while the pool reconnects
    /// (further bounded by the call's deadline). `.zero`: a call makes (or
    /// joins) one attempt and fails with `UNAVAILABLE` if it does not succeed.
    public var reconnectWait: Duration = .seconds(5)
    /// Backoff between failed connection attempts.
    public var reconnectPolicy = ReconnectPolicy()
    /// The loop that runs the sockets; nil = `RunQueueConnection.sharedLoop`.
    public var loop: EventLoop?

    public init(server: SocketAddress) {
        self.server = server
    }

    /// `host:port` with a numeric host (`127.0.0.1:7420`, `[::1]:7420`, `localhost:7420`).
    public init(server hostPort: String) throws(RunQueueError) {
        guard let address = SocketAddress(parsing: hostPort) else {
            throw RunQueueError(.invalidArgument, "server address must be host:port with a numeric host, got \"\(hostPort)\"")
        }
        self.init(server: address)
    }
}

extension Duration {
    /// Whole milliseconds, rounded up (a 1 ns deadline is 1 ms, not none); 0 for
    /// zero or negative durations.
    var wholeMilliseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, self > .zero else { return 0 }
        let fromAtto = (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        let (ms, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1000)
        return overflow ? UInt64.max : ms &+ UInt64(fromAtto)
    }
}
