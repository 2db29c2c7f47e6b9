/// The `EnqueueBatch` call (1...1000 runs).
public struct EnqueueBatchRequest: Sendable, Equatable {
    public var runs: [RunDescriptor]

    public init(runs: [RunDescriptor] = []) {
        self.runs = runs
    }
}

/// The outcome of one run of an `EnqueueBatch`; one bad run does not stop the others.
public struct EnqueueResult: Sendable, Equatable {
    public var status: Status
    public var created: Bool
    public var expiresAtMs: Int64

    public init(
        status: Status = .ok,
        created: Bool = false,
        expiresAtMs: Int64 = 0
    ) {
        self.status = status
        self.created = created
        self.expiresAtMs = expiresAtMs
    }
}

/// The answer to `EnqueueBatch`.
public struct EnqueueBatchResponse: Sendable, Equatable {
    /// One per requested run, in the same order.
    public var results: [EnqueueResult]

    public init(results: [EnqueueResult] = []) {
        self.results = results
    }
}
