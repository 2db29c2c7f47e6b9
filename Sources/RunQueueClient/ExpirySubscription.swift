import RunQueueCore

/// The expiry events of a `SubscribeExpiry` call, as an async sequence:
///
/// ```swift
/// for try await event in client.subscribeExpiry(filter: ExpiryFilter(environmentID: "env_1")) {
///     print(event.cursor, event.runID)   // persist event.cursor to resume after a restart
/// }
/// ```
///
/// Each iteration opens its own connection (a slow consumer then pushes back
/// on the server without holding up the client's other calls). After a
/// disconnect, or when the server ends the stream with a retryable status
/// (UNAVAILABLE, CANCELLED by a shutting-down server, ABORTED, ...), it
/// reconnects with backoff and resumes after the last cursor it received:
/// events arrive in cursor order with no gap and no duplicate. A subscription
/// that started live and had received nothing resumes after the
/// `live_from_cursor` of its first start, so nothing that expired while it
/// was reconnecting is missed.
///
/// The iteration ends with `nil` when the server ends the stream normally or
/// the consuming task is cancelled (or the loop is left: the stream is then
/// cancelled on the server), and throws `RunQueueError` for a status that
/// retrying cannot fix (INVALID_ARGUMENT, OUT_OF_RANGE for a cursor outside
/// the retained log, UNIMPLEMENTED, PERMISSION_DENIED, ...) or when the very
/// first start fails (server down, refused).
public struct ExpirySubscription: AsyncSequence, Sendable {
    public typealias Element = ExpiryEvent
    public typealias Failure = RunQueueError

    let configuration: RunQueueClientConfiguration
    /// What the subscription asks for on its first start.
    public let request: SubscribeExpiryRequest

    public func makeAsyncIterator() -> Iterator {
        Iterator(handle: Iterator.Handle(SubscriptionDriver(configuration: configuration, request: request)))
    }

    public struct Iterator: AsyncIteratorProtocol {
        public typealias Element = ExpiryEvent
        public typealias Failure = RunQueueError

        /// Owned by the iterator alone: when the iteration is dropped, the
        /// stream is cancelled and its connection closed.
        final class Handle: Sendable {
            let driver: SubscriptionDriver
            init(_ driver: SubscriptionDriver) { self.driver = driver }
            deinit { driver.cancel() }
        }

        let handle: Handle

        public mutating func next() async throws(RunQueueError) -> ExpiryEvent? {
            try await handle.driver.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(RunQueueError) -> ExpiryEvent? {
            try await handle.driver.next()
        }

        /// The cursor of the last event this iterator returned (0 = none yet).
        public var lastCursor: UInt64 { handle.driver.deliveredCursor }

        /// `live_from_cursor` of the subscription's first start (nil until it started).
        public var liveFromCursor: UInt64? { handle.driver.liveFromCursor }

        /// Ends the iteration: the stream is cancelled on the server, the
        /// connection closed, and `next()` returns nil.
        public func cancel() { handle.driver.cancel() }
    }
}
