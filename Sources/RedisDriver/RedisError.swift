/// Every failure the Redis driver reports: a code to branch on and a message
/// for humans (hiredis' error text or the server's error reply).
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// The configuration or URL is unusable (not a numeric host, bad port...).
        case invalidConfig
        /// Connecting, or the connection handshake (AUTH / SELECT / PING), failed or timed out.
        case connectFailed
        /// The command was not sent: the connection is not up (connecting,
        /// waiting to reconnect). Safe to retry: it did not run.
        case notConnected
        /// The connection was lost while the command was in flight: it may or may not have run.
        case disconnected
        /// No reply within the command timeout; the connection was reset, so
        /// the command may or may not have run.
        case timeout
        /// `close()` was called while the command was in flight; it may or may not have run.
        case closed
        /// The server answered with an error reply; `message` is its text ("NOSCRIPT ...", "WRONGTYPE ...").
        case replyError
        /// A reply had an unexpected shape (e.g. SCRIPT LOAD returned another SHA-1).
        case protocolError
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "redis \(code.rawValue): \(message)" }

    /// For a reply error, its first word ("NOSCRIPT", "WRONGTYPE", "ERR"); nil otherwise.
    public var replyErrorPrefix: Substring? {
        guard code == .replyError else { return nil }
        return message.split(separator: " ", maxSplits: 1).first
    }

    /// False only when the command certainly did not reach Redis.
    public var commandMayHaveRun: Bool {
        switch code {
        case .invalidConfig, .notConnected, .connectFailed: false
        case .disconnected, .timeout, .closed, .replyError, .protocolError: true
        }
    }
}
