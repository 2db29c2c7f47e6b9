/// A frame body that is not a valid protobuf message of the expected type.
///
/// The connection survives it (framing is intact): the server answers
/// `INVALID_ARGUMENT` with call id 0 and keeps reading (docs/protocol.md).
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }

    /// What `WireCodec.decodeRequest` throws for any unparsable body.
    public static let invalidRequest = WireError("request body is not a valid runqueue.v1.Request")
    /// What `WireCodec.decodeResponse` throws for any unparsable body.
    public static let invalidResponse = WireError("response body is not a valid runqueue.v1.Response")
}
