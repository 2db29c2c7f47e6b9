// SubscriptionDriver: the machinery behind one ExpirySubscription iteration.
//
// A runner task keeps one SubscribeExpiry stream open on a dedicated
// connection, session after session; the loop thread pushes the stream's
// events into a buffer; `next()` takes them out.
//
// Invariants:
// - `accepted` is the highest cursor taken into the buffer. An event with a
//   cursor <= `accepted` is a duplicate (the server delivers at least once
//   across reconnects) and is dropped, so the consumer sees strictly
//   increasing cursors.
// - A session after the first asks for the events after `resumePoint` (the
//   buffer survives the disconnect, so what was received is delivered, and
//   nothing received is asked for again). When nothing was received and the
//   first start was live, that is its `live_from_cursor`; when there is no
//   cursor at all yet, it replays the retained log (which then holds only
//   events newer than the subscription).
// - Flow control: above `highWater` buffered events the connection stops
//   reading (the server pauses the subscriber and later resumes it from its
//   durable log); it reads again at `lowWater`.
// - The first session must start (its `subscribe_expiry` response arrives),
//   else the iteration throws the error: a wrong address or a refused filter
//   surfaces instead of retrying forever. After that, retryable endings
//   reconnect with backoff until the consumer stops.
internal import DequeModule
import RunQueueCore
import Synchronization

final class SubscriptionDriver: Sendable {
    static let highWater = 1024
    static let lowWater = 256

    private struct Session {
        let connection: RunQueueConnection
        let token: CallToken
    }

    private struct State {
        var buffer = Deque<ExpiryEvent>()
        var waiter: CheckedContinuation<Result<ExpiryEvent?, RunQueueError>, Never>?
        /// Set when the iteration is over: delivered after the buffer drains.
        var end: Result<Void, RunQueueError>?
        var accepted: UInt64 = 0
        var delivered: UInt64 = 0
        var liveFrom: UInt64?
        /// A session of this iteration received its `subscribe_expiry` answer.
        var established = false
        /// Sessions that received their `subscribe_expiry` answer.
        var starts = 0
        var cancelled = false
        var runner: Task<Void, Never>?
        var session: Session?
        var paused = false

        var buffered: Int { buffer.count }

        mutating func pop() -> ExpiryEvent {
            let event = buffer.removeFirst()
            delivered = event.cursor
            return event
        }
    }

    private let request: SubscribeExpiryRequest
    private let policy: ReconnectPolicy
    private let slot: ConnectionSlot
    private let state = Mutex(State())

    init(configuration: RunQueueClientConfiguration, request: SubscribeExpiryRequest) {
        self.request = request
        policy = configuration.reconnectPolicy
        let connector = RunQueueClient.connector(configuration)
        slot = ConnectionSlot(policy: configuration.reconnectPolicy) { () throws(RunQueueError) -> RunQueueConnection in
            try await connector().0
        }
    }

    var deliveredCursor: UInt64 { state.withLock { $0.delivered } }
    var liveFromCursor: UInt64? { state.withLock { $0.liveFrom } }
    /// True while flow control holds the connection's reading (for tests).
    var isReadingPaused: Bool { state.withLock { $0.paused } }

    // MARK: - Consumer side

    func next() async throws(RunQueueError) -> ExpiryEvent? {
        startIfNeeded()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<ExpiryEvent?, RunQueueError>, Never>) in
                var resumeReading: RunQueueConnection?
                let now = state.withLock { s -> Result<ExpiryEvent?, RunQueueError>? in
                    if s.buffered > 0 {
                        let event = s.pop()
                        if s.paused, s.buffered <= Self.lowWater {
                            s.paused = false
                            resumeReading = s.session?.connection
                        }
                        return .success(event)
                    }
                    if let end = s.end {
                        s.end = .success(())  // an error is reported once; then the sequence is over
                        return end.map { nil }
                    }
                    s.waiter = continuation
                    return nil
                }
                resumeReading?.setReadingPaused(false)
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            cancel()
        }
        return try result.get()
    }

    /// Ends the iteration (idempotent): cancels the stream on the server and
    /// lets the runner close the connection.
    func cancel() {
        let (waiter, session, runner) = state.withLock { s -> (CheckedContinuation<Result<ExpiryEvent?, RunQueueError>, Never>?, Session?, Task<Void, Never>?) in
            guard !s.cancelled else { return (nil, nil, nil) }
            s.cancelled = true
            if s.end == nil { s.end = .success(()) }
            let waiter = s.waiter
            s.waiter = nil
            return (waiter, s.session, s.runner)
        }
        waiter?.resume(returning: .success(nil))
        if let session { session.connection.cancelStream(session.token) }
        runner?.cancel()
    }

    private func startIfNeeded() {
        state.withLock { s in
            guard s.runner == nil, !s.cancelled, s.end == nil else { return }
            s.runner = Task { await self.run() }
        }
    }

    private func finish(_ end: Result<Void, RunQueueError>) {
        let waiter = state.withLock { s -> CheckedContinuation<Result<ExpiryEvent?, RunQueueError>, Never>? in
            guard s.end == nil else { return nil }
            guard let waiter = s.waiter else {
                s.end = end
                return nil
            }
            s.waiter = nil
            s.end = .success(())
            return waiter
        }
        waiter?.resume(returning: end.map { nil })
    }

    // MARK: - Runner

    private enum SessionEnd {
        case stop
        case retry(RunQueueError)
    }

    private func run() async {
        var failures = 0
        sessions: while !state.withLock({ $0.cancelled }) {
            let (established, starts, request) = state.withLock { ($0.established, $0.starts, resumeRequest($0)) }
            let connection: RunQueueConnection
            do {
                // The first start makes one attempt; later ones wait through
                // the slot's backoff until the consumer stops.
                connection = try await slot.acquire(until: established ? .now + .seconds(86_400 * 365) : .now)
            } catch {
                guard established else {
                    finish(.failure(error))
                    break sessions
                }
                try? await Task.sleep(for: .milliseconds(Int64(clamping: policy.initialMs)))
                continue sessions
            }
            switch await runSession(request, on: connection) {
            case .stop:
                break sessions
            case .retry(let error):
                let (established, startsNow) = state.withLock { ($0.established, $0.starts) }
                guard established else {
                    finish(.failure(error))
                    break sessions
                }
                // A session that started resets the backoff: its successor is tried at once.
                failures = startsNow > starts ? 0 : failures + 1
                let delay = policy.delayMs(failures: failures, random: Double.random(in: 0..<1))
                if delay > 0 { try? await Task.sleep(for: .milliseconds(Int64(clamping: delay))) }
            }
        }
        finish(.success(()))
        await slot.close(flushing: true)
    }

    /// The request of the next session (see the invariants above).
    private func resumeRequest(_ s: State) -> SubscribeExpiryRequest {
        guard s.established else { return request }
        var point = s.accepted
        if !request.replay {
            point = max(point, request.resumeAfter)
            if request.resumeAfter == 0 { point = max(point, s.liveFrom ?? 0) }
        }
        var next = request
        next.resumeAfter = point
        next.replay = point == 0
        return next
    }

    /// One stream, from open to its last response.
    private func runSession(_ request: SubscribeExpiryRequest, on connection: RunQueueConnection) async -> SessionEnd {
        let token = CallToken()
        let opened = state.withLock { s -> Bool in
            guard !s.cancelled else { return false }
            s.session = Session(connection: connection, token: token)
            return true
        }
        guard opened else { return .stop }
        let last = await withCheckedContinuation { (continuation: CheckedContinuation<Response, Never>) in
            connection.openStream(.subscribeExpiry(request), token: token) { response in
                if self.handle(response) { continuation.resume(returning: response) }
            }
        }
        let (cancelled, wasPaused) = state.withLock { s -> (Bool, Bool) in
            s.session = nil
            defer { s.paused = false }
            return (s.cancelled, s.paused)
        }
        if wasPaused { connection.setReadingPaused(false) }
        if cancelled { return .stop }
        let status = last.status
        if status.code == .ok {
            finish(.success(()))  // the server ended the stream
            return .stop
        }
        let error = RunQueueError(status.code, status.message)
        if Self.retryable(status.code) { return .retry(error) }
        finish(.failure(error))
        return .stop
    }

    /// Takes one response of the stream (loop thread); true when it ends the stream.
    private func handle(_ response: Response) -> Bool {
        let ends = response.endOfStream || response.status.code != .ok
        guard response.status.code == .ok else { return ends }
        var pause: RunQueueConnection?
        var handOver: (CheckedContinuation<Result<ExpiryEvent?, RunQueueError>, Never>, ExpiryEvent)?
        state.withLock { s in
            switch response.result {
            case .subscribeExpiry(let started)?:
                s.established = true
                s.starts += 1
                if s.liveFrom == nil { s.liveFrom = started.liveFromCursor }
            case .expiryEvent(let event)?:
                guard event.cursor > s.accepted, !s.cancelled else { return }
                s.accepted = event.cursor
                if let waiter = s.waiter, s.buffered == 0 {
                    s.waiter = nil
                    s.delivered = event.cursor
                    handOver = (waiter, event)
                    return
                }
                s.buffer.append(event)
                if !s.paused, s.buffered >= Self.highWater {
                    s.paused = true
                    pause = s.session?.connection
                }
            default:
                break  // a member this build does not know: skip it
            }
        }
        pause?.setReadingPaused(true)
        if let (waiter, event) = handOver { waiter.resume(returning: .success(event)) }
        return ends
    }

    /// Statuses after which a new session can succeed.
    static func retryable(_ code: StatusCode) -> Bool {
        switch code {
        case .unavailable, .cancelled, .aborted, .deadlineExceeded, .resourceExhausted, .internal, .unknown: true
        default: false
        }
    }
}
