/// The `Hello` call: asks for the server's version and limits. It does not
/// authenticate: tokens are not implemented, and no call requires a `Hello`
/// first (docs/protocol.md, "Hello and authentication").
public struct HelloRequest: Sendable, Equatable {
    /// Sent on the wire; the server ignores it today.
    public var token: String
    /// Free text; the server ignores it today.
    public var clientName: String

    public init(
        token: String = "",
        clientName: String = ""
    ) {
        self.token = token
        self.clientName = clientName
    }
}

/// The answer to `Hello`.
public struct HelloResponse: Sendable, Equatable {
    public var serverVersion: String
    /// Largest frame body the server accepts or sends, in bytes.
    public var maxFrameBytes: UInt32
    /// The server's queue shard count.
    public var shardCount: UInt32

    public init(
        serverVersion: String = "",
        maxFrameBytes: UInt32 = 0,
        shardCount: UInt32 = 0
    ) {
        self.serverVersion = serverVersion
        self.maxFrameBytes = maxFrameBytes
        self.shardCount = shardCount
    }
}
