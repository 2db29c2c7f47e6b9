/// One server-to-client frame body (`runqueue.v1.Response`).
public struct Response: Sendable, Equatable {
    /// The call this answers; 0 for connection-level errors (docs/protocol.md).
    public var callID: UInt64
    /// `.ok` on success. On the wire an OK status with no message is left out
    /// (proto3 default), and an absent status decodes as `.ok`.
    public var status: Status
    /// Set on the last response of a stream.
    public var endOfStream: Bool
    /// nil for error responses and when the oneof was unset or unknown.
    public var result: ResponseResult?

    public init(callID: UInt64 = 0, status: Status = .ok, endOfStream: Bool = false, result: ResponseResult? = nil) {
        self.callID = callID
        self.status = status
        self.endOfStream = endOfStream
        self.result = result
    }

    /// A failure answer with no result.
    public static func error(callID: UInt64, _ code: StatusCode, _ message: String, endOfStream: Bool = false) -> Response {
        Response(callID: callID, status: Status(code, message), endOfStream: endOfStream, result: nil)
    }
}
