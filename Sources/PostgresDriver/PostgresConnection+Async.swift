import UVLoop

/// Async wrappers, callable from any thread or task: each hops to the loop
/// with `loop.execute` and resumes from the completion.
extension PostgresConnection {
    /// Starts connecting if idle and returns once connected. Throws the error
    /// of the first attempt that fails (the connection keeps retrying in the
    /// background until `close()`), or `.closed`.
    public func connect() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            loop.execute {
                self.whenConnected { continuation.resume(with: $0) }
            }
        }
    }

    public func query(_ sql: String, _ parameters: [PostgresBindable] = [], timeoutMs: UInt64? = nil) async throws -> PostgresResult {
        try await withCheckedThrowingContinuation { continuation in
            loop.execute {
                self.query(sql, parameters, timeoutMs: timeoutMs) { continuation.resume(with: $0) }
            }
        }
    }

    public func transaction(_ statements: [PostgresStatement], timeoutMs: UInt64? = nil) async throws -> [PostgresResult] {
        try await withCheckedThrowingContinuation { continuation in
            loop.execute {
                self.transaction(statements, timeoutMs: timeoutMs) { continuation.resume(with: $0) }
            }
        }
    }

    public func simpleQuery(_ sql: String, timeoutMs: UInt64? = nil) async throws -> [PostgresResult] {
        try await withCheckedThrowingContinuation { continuation in
            loop.execute {
                self.simpleQuery(sql, timeoutMs: timeoutMs) { continuation.resume(with: $0) }
            }
        }
    }

    /// `close()` on the loop thread; returns when it has run.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute {
                self.close()
                continuation.resume()
            }
        }
    }
}
