// async/await wrappers: usable from any thread or task; each hops to the
// loop with `EventLoop.execute` and resumes from the completion. Do not await
// them on the loop thread itself (it is not a Swift executor; use the
// callback API there).
import UVLoop

extension RedisConnection {
    /// Sends `args` and returns the reply; throws `RedisError`.
    public func command(_ args: [[UInt8]]) async throws -> RedisValue {
        try await withCheckedThrowingContinuation { continuation in
            loop.execute { self.send(args) { continuation.resume(with: $0) } }
        }
    }

    /// `command` with UTF-8 string arguments.
    public func command(_ args: String...) async throws -> RedisValue {
        try await command(args.map { Array($0.utf8) })
    }

    /// Runs `script` (EVALSHA, EVAL on NOSCRIPT) and returns its reply.
    public func evalScript(_ script: RedisScript, keys: [[UInt8]], args: [[UInt8]]) async throws -> RedisValue {
        try await withCheckedThrowingContinuation { continuation in
            loop.execute { self.evalScript(script, keys: keys, args: args) { continuation.resume(with: $0) } }
        }
    }

    /// SCRIPT LOAD with the SHA-1 check (see `loadScript(_:_:)`).
    public func loadScript(_ script: RedisScript) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            loop.execute { self.loadScript(script) { continuation.resume(with: $0) } }
        }
    }

    /// Returns once the connection is `.connected` (at once if it is). Throws
    /// `.timeout` after `timeoutMs`, `.closed` if it gets closed first.
    public func waitUntilConnected(timeoutMs: UInt64) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            loop.execute {
                final class Once {
                    var continuation: CheckedContinuation<Void, any Error>?
                    var timer: LoopTimer?
                    init(_ c: CheckedContinuation<Void, any Error>) { continuation = c }
                    func finish(_ result: Result<Void, RedisError>) {
                        timer?.close()
                        timer = nil
                        continuation?.resume(with: result)
                        continuation = nil
                    }
                }
                let once = Once(continuation)
                switch self.state {
                case .connected: once.finish(.success(())); return
                case .closed: once.finish(.failure(RedisError(.closed, "connection is closed"))); return
                default: break
                }
                once.timer = self.loop.schedule(afterMs: timeoutMs) {
                    once.finish(.failure(RedisError(.timeout, "not connected within \(timeoutMs) ms")))
                }
                self.observeState { state in
                    switch state {
                    case .connected: once.finish(.success(()))
                    case .closed: once.finish(.failure(RedisError(.closed, "connection closed while waiting to connect")))
                    default: return once.continuation == nil
                    }
                    return true
                }
            }
        }
    }
}
