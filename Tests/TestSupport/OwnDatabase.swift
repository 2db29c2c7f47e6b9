import Foundation

/// A PostgreSQL database of one test's own on the test server (created
/// empty; runqueued migrates it when it starts), dropped when released.
public final class OwnDatabase: Sendable {
    public let name: String
    public let url: String

    public init() throws {
        name = "rq_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let base = TestServices.databaseURL
        url = String(base[..<(base.lastIndex(of: "/") ?? base.endIndex)]) + "/" + name
        try psql(TestServices.databaseURL, "CREATE DATABASE \(name)")
    }

    deinit { drop() }

    /// Drops the database (again: nothing happens).
    public func drop() { _ = try? psql(TestServices.databaseURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }

    /// Runs `query` on this database: the unaligned, tuples-only output.
    @discardableResult
    public func sql(_ query: String) throws -> String { try psql(url, query) }
}

/// The Redis and the database of one test: an engine on them shares nothing
/// with another test's (not the outbox, the expiry leases, the reconciler's
/// rows or the event log), so tests run side by side.
public final class TestStack: Sendable {
    public let redis: OwnRedis
    public let database: OwnDatabase

    public init(redisArguments: [String] = []) throws {
        redis = try OwnRedis(extraArguments: redisArguments)
        database = try OwnDatabase()
    }

    public var redisURL: String { redis.url }
    public var databaseURL: String { database.url }
}
