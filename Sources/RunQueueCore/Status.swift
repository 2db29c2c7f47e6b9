/// The status every response carries (`runqueue.v1.Status`): a code, and for
/// failures a message naming the field or limit at fault (docs/protocol.md).
public struct Status: Sendable, Equatable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String

    public init(_ code: StatusCode = .ok, _ message: String = "") {
        self.code = code
        self.message = message
    }

    /// Success with no message; also what an absent `status` field decodes to.
    public static let ok = Status()

    public var isOK: Bool { code == .ok }

    public var description: String { message.isEmpty ? code.name : "\(code.name): \(message)" }
}
