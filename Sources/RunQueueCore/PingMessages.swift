/// The `Ping` call; the payload is echoed.
public struct PingRequest: Sendable, Equatable {
    public var payload: [UInt8]

    public init(payload: [UInt8] = []) {
        self.payload = payload
    }
}

/// The answer to `Ping`.
public struct PingResponse: Sendable, Equatable {
    public var payload: [UInt8]

    public init(payload: [UInt8] = []) {
        self.payload = payload
    }
}
