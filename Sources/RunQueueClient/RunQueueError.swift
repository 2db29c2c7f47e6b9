import RunQueueCore

/// A failed call: the server's status code and message, or a client-side
/// condition mapped to the nearest status (`UNAVAILABLE` when the connection
/// is gone, `DEADLINE_EXCEEDED` when the call's deadline passed).
public struct RunQueueError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: StatusCode
    public let message: String

    public init(_ code: StatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.name): \(message)" }
}
