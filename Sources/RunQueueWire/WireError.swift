/// A frame body that is not a valid protobuf message of the expected type.
///
/// The connection survives it (framing is intact): the server answers
/// `INVALID_ARGUMENT` with call id 0 and keeps reading (docs/protocol.md).
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    /// The call the body belongs to, when it could be read before the fault
    /// (0 otherwise): the answer can then go to that call.
    public let callID: UInt64

    public init(_ message: String, callID: UInt64 = 0) {
        self.message = message
        self.callID = callID
    }

    public var description: String { message }

    /// What `WireCodec.decodeRequest` throws for any unparsable body.
    public static let invalidRequest = WireError("request body is not a valid runqueue.v1.Request")
    /// What `WireCodec.decodeResponse` throws for any unparsable body.
    public static let invalidResponse = WireError("response body is not a valid runqueue.v1.Response")
}
