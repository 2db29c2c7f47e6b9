/// The `Enqueue` call.
public struct EnqueueRequest: Sendable, Equatable {
    public var run: RunDescriptor

    public init(run: RunDescriptor = RunDescriptor()) {
        self.run = run
    }
}

/// The answer to `Enqueue`.
public struct EnqueueResponse: Sendable, Equatable {
    /// False: the run id already existed and nothing changed.
    public var created: Bool
    /// The TTL deadline, Unix milliseconds; 0 = no TTL.
    public var expiresAtMs: Int64

    public init(
        created: Bool = false,
        expiresAtMs: Int64 = 0
    ) {
        self.created = created
        self.expiresAtMs = expiresAtMs
    }
}
