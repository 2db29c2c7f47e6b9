import Foundation

/// Applies numbered SQL migrations in version order, each exactly once, safely
/// when several servers start at the same moment.
///
/// A run, all on one connection:
///  1. `SELECT pg_advisory_lock(lockKey)`: a session-level lock, so a second
///     server waits here until the first is done (or its session dies, which
///     releases the lock).
///  2. Creates the record table if missing, then reads which versions it holds
///     (after taking the lock, so no two runs race on either).
///  3. Each migration not recorded yet, in order: one simple query holding the
///     file's SQL and the INSERT of its record, so both commit or neither does.
///     A failure stops the run; earlier migrations stay applied.
///  4. `pg_advisory_unlock`.
/// Steps 2-4 are bound to the session that took the lock: if the connection
/// drops and reconnects meanwhile they fail instead of running unlocked.
///
/// Set validation (at init): versions must be unique and consecutive from 0 or
/// 1; every file in the directory (dot-files aside) must be `NNNN_name.sql`.
/// An applied migration whose name or checksum differs from the file is an
/// error naming the file; recorded versions this build does not know (a newer
/// build ran) are reported, not an error.
public struct Migrator: Sendable {
    public let migrations: [Migration]
    /// The record table (`name` or `schema.name`).
    public let table: String
    /// The advisory lock key: by default derived from the table name, so runs
    /// against different record tables do not wait for each other.
    public var lockKey: Int64
    /// How long to wait for the lock (another server migrating), in ms.
    public var lockTimeoutMs: UInt64 = 300_000
    /// Bound on one migration, in ms; 0 = none (migrations may rewrite big tables).
    public var migrationTimeoutMs: UInt64 = 0

    public init(migrations: [Migration], table: String = "runqueue_migrations") throws {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (index, migration) in sorted.enumerated() {
            if index == 0 {
                guard migration.version <= 1 else {
                    throw PostgresError(.migration, "\(migration.fileName): versions must start at 0 or 1")
                }
                continue
            }
            let previous = sorted[index - 1]
            if migration.version == previous.version {
                throw PostgresError(.migration, "\(migration.fileName): version \(migration.version) is also used by \(previous.fileName)")
            }
            if migration.version != previous.version + 1 {
                throw PostgresError(.migration, "\(migration.fileName): version \(migration.version) follows \(previous.version); versions must have no gaps")
            }
        }
        let parts = table.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy(Self.isPlainIdentifier) else {
            throw PostgresError(.invalidArgument, "migration table must be name or schema.name (letters, digits, _): \(table)")
        }
        self.migrations = sorted
        self.table = table
        lockKey = Int64(bitPattern: Migration.fnv1a(Array("runqueue.migrations:\(table)".utf8)))
    }

    /// Loads every `NNNN_name.sql` in `directory` (files starting with `.` are
    /// ignored; anything else is an error naming it).
    public init(directory: URL, table: String = "runqueue_migrations") throws {
        try self.init(migrations: Self.load(directory: directory), table: table)
    }

    public static func load(directory: URL) throws -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw PostgresError(.migration, "cannot list migrations in \(directory.path): \(error.localizedDescription)", cause: error)
        }
        var migrations: [Migration] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let url = directory.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw PostgresError(.migration, "\(name): a directory among the migrations (expected NNNN_name.sql files)")
            }
            let probe = try Migration(fileName: name, sql: "")  // name check before reading
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw PostgresError(.migration, "\(name): cannot be read")
            }
            guard let sql = String(data: data, encoding: .utf8) else {
                throw PostgresError(.migration, "\(name): not UTF-8")
            }
            migrations.append(try Migration(fileName: probe.fileName, sql: sql))
        }
        return migrations
    }

    /// Runs the migrations on `connection`, which must be connected (loop
    /// thread). Other requests on the connection wait behind the lock and
    /// each migration, so run it before the connection carries traffic.
    public func run(on connection: PostgresConnection,
                    _ completion: @escaping (Result<MigrationReport, PostgresError>) -> Void) {
        MigrationRun(migrator: self, connection: connection, completion: completion).start()
    }

    /// `run(on:)` from any thread or task.
    public func run(on connection: PostgresConnection) async throws -> MigrationReport {
        try await withCheckedThrowingContinuation { continuation in
            connection.loop.execute {
                self.run(on: connection) { continuation.resume(with: $0) }
            }
        }
    }

    /// The table name quoted for SQL (`"schema"."name"`).
    var quotedTable: String {
        table.split(separator: ".").map { PostgresConnection.quoteIdentifier(String($0)) }.joined(separator: ".")
    }

    private static func isPlainIdentifier(_ part: Substring) -> Bool {
        guard let first = part.unicodeScalars.first, first.isASCII, first.properties.isAlphabetic || first == "_" else {
            return false
        }
        return part.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
    }
}

/// One run of a Migrator: the steps as a chain of completions. Loop thread.
private final class MigrationRun {
    let migrator: Migrator
    let connection: PostgresConnection
    private var completion: ((Result<MigrationReport, PostgresError>) -> Void)?
    /// The session holding the advisory lock.
    private var session: UInt64 = 0
    private var pending: [Migration] = []
    private var applied: [Int] = []
    private var alreadyApplied: [Int] = []
    private var unknown: [Int] = []

    init(migrator: Migrator, connection: PostgresConnection,
         completion: @escaping (Result<MigrationReport, PostgresError>) -> Void) {
        self.migrator = migrator
        self.connection = connection
        self.completion = completion
    }

    func start() {
        connection.query("SELECT pg_advisory_lock($1)", [.int64(migrator.lockKey)], timeoutMs: migrator.lockTimeoutMs) { outcome in
            switch outcome {
            case .failure(let error):
                self.finish(.failure(PostgresError(.migration, "could not take the migration lock: \(error.message)", cause: error)))
            case .success:
                guard let session = self.connection.connectedSession else {
                    self.finish(.failure(PostgresError(.migration, "connection lost after taking the migration lock")))
                    return
                }
                self.session = session
                self.createTable()
            }
        }
    }

    private func createTable() {
        let sql = """
            CREATE TABLE IF NOT EXISTS \(migrator.quotedTable) (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        connection.submitSimple(sql, timeoutMs: nil, pinnedTo: session) { outcome in
            switch outcome {
            case .failure(let error):
                self.unlockAndFinish(.failure(PostgresError(.migration, "could not create \(self.migrator.table): \(error.message)", cause: error)))
            case .success:
                self.readApplied()
            }
        }
    }

    private func readApplied() {
        let sql = "SELECT version, name, checksum FROM \(migrator.quotedTable) ORDER BY version"
        connection.submit([PostgresStatement(sql)], timeoutMs: nil, pinnedTo: session) { outcome in
            switch outcome {
            case .failure(let error):
                self.unlockAndFinish(.failure(PostgresError(.migration, "could not read \(self.migrator.table): \(error.message)", cause: error)))
            case .success(let results):
                do throws(PostgresError) {
                    try self.plan(results[0])
                    self.applyNext()
                } catch {
                    self.unlockAndFinish(.failure(error))
                }
            }
        }
    }

    private func plan(_ recorded: PostgresResult) throws(PostgresError) {
        var byVersion: [Int: (name: String, checksum: String)] = [:]
        for row in recorded {
            guard let version = row.int("version") else { continue }
            byVersion[version] = (row["name"] ?? "", row["checksum"] ?? "")
        }
        let known = Set(migrator.migrations.map(\.version))
        unknown = byVersion.keys.filter { !known.contains($0) }.sorted()
        for migration in migrator.migrations {
            guard let record = byVersion[migration.version] else {
                pending.append(migration)
                continue
            }
            guard record.name == migration.name else {
                throw PostgresError(.migration, "\(migration.fileName): version \(migration.version) was applied as \"\(record.name)\"")
            }
            guard record.checksum == migration.checksum else {
                throw PostgresError(.migration, "\(migration.fileName): changed after it was applied (checksum \(migration.checksum), recorded \(record.checksum))")
            }
            alreadyApplied.append(migration.version)
        }
    }

    private func applyNext() {
        guard !pending.isEmpty else {
            unlockAndFinish(.success(MigrationReport(applied: applied, alreadyApplied: alreadyApplied, unknownInDatabase: unknown)))
            return
        }
        let migration = pending.removeFirst()
        // The newline ends a trailing `--` comment; the extra `;` tolerates a
        // file without a final semicolon (an empty statement is harmless).
        let sql = migration.sql + "\n;\nINSERT INTO \(migrator.quotedTable) (version, name, checksum) VALUES ("
            + "\(migration.version), \(PostgresConnection.quoteLiteral(migration.name)), "
            + "\(PostgresConnection.quoteLiteral(migration.checksum)))"
        connection.submitSimple(sql, timeoutMs: migrator.migrationTimeoutMs, pinnedTo: session) { outcome in
            switch outcome {
            case .failure(let error):
                self.unlockAndFinish(.failure(PostgresError(.migration, "\(migration.fileName) failed: \(error.message)", detail: error.detail, cause: error)))
            case .success:
                self.applied.append(migration.version)
                self.applyNext()
            }
        }
    }

    private func unlockAndFinish(_ outcome: Result<MigrationReport, PostgresError>) {
        // If the session is gone the lock went with it; the outcome stands either way.
        connection.submit([PostgresStatement("SELECT pg_advisory_unlock($1)", [.int64(migrator.lockKey)])],
                          timeoutMs: nil, pinnedTo: session) { _ in
            self.finish(outcome)
        }
    }

    private func finish(_ outcome: Result<MigrationReport, PostgresError>) {
        let callback = completion
        completion = nil
        callback?(outcome)
    }
}
