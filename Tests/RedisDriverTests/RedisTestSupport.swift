import Foundation
import Synchronization
import TestSupport
import UVLoop
@testable import RedisDriver

extension OwnRedis {
    /// A connection configuration for this server.
    var config: RedisConfig { RedisConfig(host: "127.0.0.1", port: port) }
}

func sharedRedisConfig() throws -> RedisConfig {
    try RedisConfig(url: TestServices.redisURL)
}

/// A key no other test or run uses.
func uniqueKey(_ name: String) -> String {
    "test:redisdriver:\(UUID().uuidString):\(name)"
}

/// Creates and starts a connection on `loop`, optionally waiting until it is up.
func startConnection(_ loop: EventLoop, _ config: RedisConfig, waitMs: UInt64? = 3_000) async throws -> RedisConnection {
    let connection = try await loop.submit {
        let connection = RedisConnection(loop: loop, config: config)
        connection.connect()
        return connection
    }
    if let waitMs { try await connection.waitUntilConnected(timeoutMs: waitMs) }
    return connection
}

func close(_ connection: RedisConnection) async throws {
    try await connection.loop.submit { connection.close() }
}

/// The error of a failed `command`, or nil when it succeeded.
func commandError(_ connection: RedisConnection, _ args: String...) async -> RedisError? {
    do {
        _ = try await connection.command(args.map { Array($0.utf8) })
        return nil
    } catch let error as RedisError {
        return error
    } catch {
        return RedisError(.protocolError, "unexpected error type \(error)")
    }
}

/// Records every state change of a connection (thread-safe).
final class StateLog: Sendable {
    private let states = Mutex<[RedisConnection.State]>([])
    func append(_ state: RedisConnection.State) { states.withLock { $0.append(state) } }
    var all: [RedisConnection.State] { states.withLock { $0 } }
}

/// Counts completions per command index, to check each ran exactly once.
final class CompletionTally: Sendable {
    private struct State {
        var calls: [Int]
        var distinct = 0
        var results: [Result<RedisValue, RedisError>?]
    }
    private let state: Mutex<State>
    init(count: Int) { state = Mutex(State(calls: Array(repeating: 0, count: count), results: Array(repeating: nil, count: count))) }

    /// Returns the number of distinct commands completed so far.
    func record(_ index: Int, _ result: Result<RedisValue, RedisError>) -> Int {
        state.withLock { s in
            s.calls[index] += 1
            if s.calls[index] == 1 { s.distinct += 1 }
            s.results[index] = result
            return s.distinct
        }
    }

    var calls: [Int] { state.withLock { $0.calls } }
    var results: [Result<RedisValue, RedisError>?] { state.withLock { $0.results } }
}
