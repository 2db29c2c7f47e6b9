/// One client-to-server frame body (`runqueue.v1.Request`).
public struct Request: Sendable, Equatable {
    /// Client-chosen, non-zero, unique among the connection's calls in progress.
    public var callID: UInt64
    /// nil when the `call` oneof was unset or carried a method number this build
    /// does not know; the server answers `UNIMPLEMENTED`.
    public var call: Call?

    public init(callID: UInt64 = 0, call: Call? = nil) {
        self.callID = callID
        self.call = call
    }
}
