import Foundation
@testable import PostgresDriver
import Testing
import TestSupport
import UVLoop

/// A temporary migrations folder and a schema + record table no other test uses.
private struct MigrationFixture {
    let directory: URL
    let schema: String
    let table: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("migrations"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        schema = uniqueName("mig")
        table = uniqueName("runqueue_migrations")
    }

    func write(_ name: String, _ sql: String) throws {
        try sql.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    /// 0001 creates the schema and a log table (several statements, a trailing
    /// comment, no final semicolon); 0002 logs one row.
    func writeStandardSet() throws {
        try write("0001_create_log.sql", """
            CREATE SCHEMA \(schema);
            CREATE TABLE \(schema).log (id serial PRIMARY KEY, note text NOT NULL);
            CREATE INDEX ON \(schema).log (note) -- no semicolon, comment last
            """)
        try write("0002_seed.sql", "INSERT INTO \(schema).log (note) VALUES ('seeded');\n")
    }

    func migrator() throws -> Migrator {
        try Migrator(directory: directory, table: table)
    }

    func cleanUp(_ connection: PostgresConnection) async {
        _ = try? await connection.simpleQuery("DROP SCHEMA IF EXISTS \(schema) CASCADE; DROP TABLE IF EXISTS \(table)")
        try? FileManager.default.removeItem(at: directory)
    }
}

@Suite(.timeLimit(.minutes(3)), .tags(.integration), .needsServices) struct MigratorTests {
    @Test func appliesInOrderOnceAndRecordsEachMigration() async throws {
        let fixture = try MigrationFixture()
        try fixture.writeStandardSet()
        let loop = try EventLoop()
        let connection = try await connected(loop)

        let first = try await fixture.migrator().run(on: connection)
        #expect(first.applied == [1, 2])
        #expect(first.alreadyApplied == [])
        let second = try await fixture.migrator().run(on: connection)
        #expect(second.applied == [])
        #expect(second.alreadyApplied == [1, 2])

        let recorded = try await connection.query("SELECT version, name, checksum FROM \(fixture.table) ORDER BY version")
        #expect(recorded.rows.map { $0[0] } == ["1", "2"])
        #expect(recorded.rows.map { $0[1] } == ["create_log", "seed"])
        #expect(try await connection.query("SELECT count(*) FROM \(fixture.schema).log").scalar == "1")
        // The lock was released: another session can take it at once.
        let key = try fixture.migrator().lockKey
        #expect(try await connection.query("SELECT pg_try_advisory_lock($1)", [.int64(key)]).scalar == "t")
        _ = try await connection.query("SELECT pg_advisory_unlock($1)", [.int64(key)])

        await fixture.cleanUp(connection)
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func twoServersStartingTogetherApplyEachMigrationOnce() async throws {
        let fixture = try MigrationFixture()
        try fixture.writeStandardSet()
        // A slow migration widens the window in which both runs are active.
        try fixture.write("0003_slow.sql", "SELECT pg_sleep(0.2); INSERT INTO \(fixture.schema).log (note) VALUES ('slow');")
        let loopA = try EventLoop()
        let loopB = try EventLoop()
        let a = try await connected(loopA)
        let b = try await connected(loopB)
        let migrator = try fixture.migrator()

        async let reportA = migrator.run(on: a)
        async let reportB = migrator.run(on: b)
        let reports = try await [reportA, reportB]

        #expect(reports.flatMap(\.applied).sorted() == [1, 2, 3])
        #expect(reports.contains { $0.applied == [1, 2, 3] })
        #expect(reports.contains { $0.applied == [] && $0.alreadyApplied == [1, 2, 3] })
        let notes = try await a.query("SELECT note, count(*) FROM \(fixture.schema).log GROUP BY note ORDER BY note")
        #expect(notes.rows == [["seeded", "1"], ["slow", "1"]])
        #expect(try await a.query("SELECT count(*) FROM \(fixture.table)").scalar == "3")

        await fixture.cleanUp(a)
        await a.close()
        await b.close()
        #expect(loopA.shutdown() == 0)
        #expect(loopB.shutdown() == 0)
    }

    @Test func failedMigrationStopsTheRunAndIsNotRecorded() async throws {
        let fixture = try MigrationFixture()
        try fixture.writeStandardSet()
        // Fails at run time, after its INSERT ran: the INSERT must roll back.
        try fixture.write("0003_broken.sql", "INSERT INTO \(fixture.schema).log (note) VALUES ('half');\nSELECT 1 / 0;")
        let loop = try EventLoop()
        let connection = try await connected(loop)

        let error = await #expect(throws: PostgresError.self) { try await fixture.migrator().run(on: connection) }
        #expect(error?.kind == .migration)
        #expect(error?.message.contains("0003_broken.sql") == true)
        #expect(error?.sqlstate == "22012")
        #expect(try await connection.query("SELECT max(version) FROM \(fixture.table)").scalar == "2")
        #expect(try await connection.query("SELECT count(*) FROM \(fixture.schema).log WHERE note = 'half'").scalar == "0")

        try fixture.write("0003_broken.sql", "INSERT INTO \(fixture.schema).log (note) VALUES ('fixed');")
        #expect(try await fixture.migrator().run(on: connection).applied == [3])

        // Editing an applied file is caught.
        try fixture.write("0002_seed.sql", "INSERT INTO \(fixture.schema).log (note) VALUES ('edited');")
        let changed = await #expect(throws: PostgresError.self) { try await fixture.migrator().run(on: connection) }
        #expect(changed?.message.contains("0002_seed.sql") == true)

        await fixture.cleanUp(connection)
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test(arguments: [
        (["0001_a.sql", "notes.txt"], "notes.txt"),
        (["0001_a.sql", "0002 b.sql"], "0002 b.sql"),
        (["0001_a.sql", "x_b.sql"], "x_b.sql"),
        (["0001_a.sql", "0002.sql"], "0002.sql"),
        (["0001_a.sql", "0003_c.sql"], "0003_c.sql"),
        (["0001_a.sql", "01_b.sql"], "01_b.sql"),
        (["0002_b.sql"], "0002_b.sql"),
    ])
    func rejectsABadSetNamingTheFile(files: [String], culprit: String) throws {
        let fixture = try MigrationFixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        for file in files { try fixture.write(file, "SELECT 1;") }
        let error = #expect(throws: PostgresError.self) { try fixture.migrator() }
        #expect(error?.kind == .migration)
        #expect(error?.message.contains(culprit) == true, "\(error?.message ?? "")")
    }

    @Test func acceptsASetStartingAtZeroAndIgnoresDotFiles() throws {
        let fixture = try MigrationFixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        try fixture.write("0000_placeholder.sql", "-- placeholder")
        try fixture.write("0001_next.sql", "SELECT 1;")
        try fixture.write(".DS_Store", "junk")
        let migrator = try fixture.migrator()
        #expect(migrator.migrations.map(\.version) == [0, 1])
        #expect(migrator.migrations.map(\.name) == ["placeholder", "next"])
        #expect(throws: PostgresError.self) { try Migrator(migrations: [], table: "bad;table") }
    }
}
