/// The `ReadMessage` call.
public struct ReadMessageRequest: Sendable, Equatable {
    public var runID: String
    public var environmentID: String

    public init(
        runID: String = "",
        environmentID: String = ""
    ) {
        self.runID = runID
        self.environmentID = environmentID
    }
}

/// The answer to `ReadMessage`.
public struct ReadMessageResponse: Sendable, Equatable {
    /// nil when the field was absent.
    public var message: RunMessage?
    public var source: MessageSource

    public init(
        message: RunMessage? = nil,
        source: MessageSource = .unspecified
    ) {
        self.message = message
        self.source = source
    }
}
