// ConnectionSlot: one place in a client's pool, holding at most one live
// connection and replacing it when it drops.
//
// States: no connection / one attempt in flight (callers join it) / connected
// / backing off after failed attempts (until `retryAt`). A caller that finds
// no live connection starts an attempt, or joins the one in flight; after a
// failure it waits for the next attempt only while its own wait limit allows
// (`RunQueueClientConfiguration.reconnectWait` and the call's deadline), else
// it fails with the attempt's error. Nothing reconnects in the background:
// the next call drives it, so an idle client costs nothing while a server is down.
//
// Invariants: at most one attempt at a time per slot; a successful attempt
// resets the backoff; after `close()` the slot hands out nothing and closes
// what an attempt still in flight produces.
import RunQueueCore
import Synchronization
import UVLoop

final class ConnectionSlot: Sendable {
    /// Makes one connection (connect + Hello); the client owns the recipe.
    typealias Connector = @Sendable () async throws(RunQueueError) -> RunQueueConnection

    private struct State {
        var connection: RunQueueConnection?
        var attempt: Task<Result<RunQueueConnection, RunQueueError>, Never>?
        var failures = 0
        var retryAt: ContinuousClock.Instant?
        var lastError: RunQueueError?
        var closed = false
    }

    private enum Step {
        case use(RunQueueConnection)
        case join(Task<Result<RunQueueConnection, RunQueueError>, Never>)
        case backOff(until: ContinuousClock.Instant, lastError: RunQueueError)
        case fail(RunQueueError)
    }

    private let connector: Connector
    private let policy: ReconnectPolicy
    private let state = Mutex(State())

    init(policy: ReconnectPolicy, connector: @escaping Connector) {
        self.policy = policy
        self.connector = connector
    }

    /// The connection if it is up right now (the fast path of every call).
    var liveConnection: RunQueueConnection? {
        state.withLock { s in
            guard let connection = s.connection, connection.isConnected else { return nil }
            return connection
        }
    }

    /// A live connection, connecting (and waiting through backoff) until `limit`.
    func acquire(until limit: ContinuousClock.Instant) async throws(RunQueueError) -> RunQueueConnection {
        while true {
            switch nextStep() {
            case .use(let connection):
                return connection
            case .fail(let error):
                throw error
            case .join(let attempt):
                switch await attempt.value {
                case .success(let connection):
                    return connection
                case .failure(let error):
                    let retryAt = state.withLock { $0.retryAt } ?? .now
                    if retryAt > limit || Task.isCancelled { throw error }
                }
            case .backOff(let until, let lastError):
                guard until <= limit else {
                    let ms = (until - .now).wholeMilliseconds
                    throw RunQueueError(lastError.code, "\(lastError.message) (next attempt in \(ms) ms)")
                }
                do {
                    try await Task.sleep(until: until, clock: .continuous)
                } catch {
                    throw RunQueueError(.cancelled, "the call was cancelled while waiting for a connection")
                }
            }
        }
    }

    /// Starts an attempt now when the slot is down and not backing off, so the
    /// pool heals while other slots serve the calls.
    func reconnectSoon() {
        _ = state.withLock { s -> Bool in
            guard !s.closed, s.attempt == nil, s.connection?.isConnected != true else { return false }
            if let retryAt = s.retryAt, retryAt > .now { return false }
            s.connection = nil
            s.attempt = startAttempt()
            return true
        }
    }

    /// Closes the connection (after sending what is queued when `flushing`)
    /// and refuses further use.
    func close(flushing: Bool = false) async {
        let (connection, attempt) = state.withLock { s -> (RunQueueConnection?, Task<Result<RunQueueConnection, RunQueueError>, Never>?) in
            s.closed = true
            defer { s.connection = nil }
            return (s.connection, s.attempt)
        }
        await connection?.close(flushing: flushing)
        if case .success(let late)? = await attempt?.value { await late.close() }
    }

    private func nextStep() -> Step {
        state.withLock { s in
            if s.closed { return .fail(RunQueueError(.unavailable, "the client was closed")) }
            if let connection = s.connection {
                if connection.isConnected { return .use(connection) }
                s.connection = nil
            }
            if let attempt = s.attempt { return .join(attempt) }
            if let retryAt = s.retryAt, retryAt > .now, let lastError = s.lastError {
                return .backOff(until: retryAt, lastError: lastError)
            }
            let attempt = startAttempt()
            s.attempt = attempt
            return .join(attempt)
        }
    }

    /// Runs one attempt and records its outcome. Called with the lock held;
    /// the task takes the lock itself only when it finishes.
    private func startAttempt() -> Task<Result<RunQueueConnection, RunQueueError>, Never> {
        Task { [connector, policy] in
            let result: Result<RunQueueConnection, RunQueueError>
            do throws(RunQueueError) {
                result = .success(try await connector())
            } catch {
                result = .failure(error)
            }
            let closeLate = state.withLock { s -> RunQueueConnection? in
                s.attempt = nil
                switch result {
                case .success(let connection):
                    if s.closed { return connection }
                    s.connection = connection
                    s.failures = 0
                    s.retryAt = nil
                    s.lastError = nil
                case .failure(let error):
                    s.failures += 1
                    s.lastError = error
                    let delay = policy.delayMs(failures: s.failures, random: Double.random(in: 0..<1))
                    s.retryAt = .now + .milliseconds(Int64(clamping: delay))
                }
                return nil
            }
            if let closeLate {
                await closeLate.close()
                return .failure(RunQueueError(.unavailable, "the client was closed"))
            }
            return result
        }
    }
}
