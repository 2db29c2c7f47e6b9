import RunQueueCore

/// A storage failure, with the wire status it maps to.
public struct QueueStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: StatusCode
    public let message: String

    public init(_ code: StatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.name): \(message)" }
}
