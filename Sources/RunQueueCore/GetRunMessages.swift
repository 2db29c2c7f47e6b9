/// The `GetRun` call.
public struct GetRunRequest: Sendable, Equatable {
    public var runID: String

    public init(runID: String = "") {
        self.runID = runID
    }
}

/// The answer to `GetRun`.
public struct GetRunResponse: Sendable, Equatable {
    /// nil when the field was absent.
    public var run: RunRecord?

    public init(run: RunRecord? = nil) {
        self.run = run
    }
}
