/// The `Hello` call: authenticates the connection when the server has tokens.
public struct HelloRequest: Sendable, Equatable {
    public var token: String
    /// Free text for the server's logs.
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
