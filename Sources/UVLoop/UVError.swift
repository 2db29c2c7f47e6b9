internal import CLibUV

/// A libuv error: the negative errno-style code and libuv's name and text for it.
public struct UVError: Error, CustomStringConvertible, Sendable, Equatable {
    public let code: Int32
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    public var name: String { String(cString: uv_err_name(code)) }
    public var description: String { "\(operation): \(name) (\(String(cString: uv_strerror(code))))" }

    /// The peer reset or closed the connection (ECONNRESET, EPIPE, EOF).
    public var isConnectionLost: Bool {
        code == UV_ECONNRESET.rawValue || code == UV_EPIPE.rawValue || code == UV_EOF.rawValue
    }

    static func check(_ rc: Int32, _ operation: String) throws {
        if rc < 0 { throw UVError(code: rc, operation: operation) }
    }
}
