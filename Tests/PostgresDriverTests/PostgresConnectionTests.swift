import Foundation
@testable import PostgresDriver
import Synchronization
import Testing
import TestSupport
import UVLoop

@Suite(.timeLimit(.minutes(3)), .tags(.integration), .needsServices) struct PostgresConnectionTests {
    @Test func answersTenThousandPipelinedQueriesEachExactlyOnce() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let count = 10_000
        let answers = Collector<(index: Int, value: Int?)>()
        try await loop.submit {
            for i in 0..<count {
                connection.query("SELECT $1::int + 1 AS n", [.int(i)]) { outcome in
                    answers.append((i, (try? outcome.get())?[0].int("n")))
                }
            }
        }
        let got = await answers.wait(for: count)
        #expect(got.count == count)
        var seen = [Int](repeating: 0, count: count)
        for answer in got {
            seen[answer.index] += 1
            #expect(answer.value == answer.index + 1)
        }
        #expect(seen.allSatisfy { $0 == 1 })
        // Answers come in order: a late duplicate would arrive before this one.
        #expect(try await connection.query("SELECT 1").scalar == "1")
        #expect(answers.values.count == count)
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func preparesAStatementOnceAndExecutesItByName() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        for i in 0..<5 {
            let rows = try await connection.query("SELECT $1::int * 2 AS n", [.int(i)])
            #expect(rows[0].int("n") == i * 2)
        }
        // One prepared statement on the server for the five executions.
        let prepared = try await connection.query("SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = 'SELECT $1::int * 2 AS n'")
        #expect(prepared[0].int("n") == 1)
        // A statement new to the session inside a transaction that aborts
        // (the first statement fails) is still prepared: it is prepared in a
        // segment of its own, so the next use works.
        await #expect(throws: PostgresError.self) {
            _ = try await connection.transaction([PostgresStatement("SELECT 1/0"), PostgresStatement("SELECT $1::int + 7 AS n", [.int(1)])])
        }
        #expect(try await connection.query("SELECT $1::int + 7 AS n", [.int(1)])[0].int("n") == 8)
        // A statement that cannot be prepared fails with its own error, every time.
        for _ in 0..<2 {
            do {
                _ = try await connection.query("SELEC $1::int", [.int(1)])
                Issue.record("bad SQL succeeded")
            } catch {
                #expect((error as? PostgresError)?.message.contains("syntax error") == true, "\(error)")
            }
        }
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    /// A statement the connection prepared by itself is planned for each
    /// execution: a generic plan made while a table was nearly empty would
    /// otherwise stay for the session (a sequential scan per call after the
    /// table has grown), which stalled the outbox applier on new databases.
    @Test func plansEveryExecutionOfAPreparedStatementForItsParameters() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let table = uniqueName("plans")
        // Rows as wide as a run's: on a table this small the planner's
        // generic plan is a sequential scan, and the default plan cache takes it.
        _ = try await connection.query("""
            CREATE TEMP TABLE \(table) (id text PRIMARY KEY, status text NOT NULL DEFAULT 'Q', v int NOT NULL DEFAULT 0,
                                        a text, b text, c text, d text, e text, f text, g text, h text)
            """)
        _ = try await connection.query("INSERT INTO \(table) (id) SELECT 'r' || g FROM generate_series(0, 9) g")
        let update = "UPDATE \(table) SET v = v + 1 FROM unnest($1::text[]) AS x(id) WHERE \(table).id = x.id AND status = 'Q'"
        for i in 0..<8 {
            _ = try await connection.query(update, [.textArray(["r\(i)"])])
        }
        _ = try await connection.query("INSERT INTO \(table) (id) SELECT 'r' || g FROM generate_series(10, 9999) g")
        _ = try await connection.query(update, [.textArray((0..<10).map { "r\($0)" })])
        let plans = try await connection.query(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1", [.text(update)])
        #expect(plans.count == 1)
        #expect(plans.first?.int64("generic_plans") == 0)
        #expect(plans.first?.int64("custom_plans") == 9)
        #expect(try await connection.query("SHOW plan_cache_mode")[0]["plan_cache_mode"] == "force_custom_plan")
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func sendsRequestsQueuedWhileConnecting() async throws {
        let loop = try EventLoop()
        let connection = PostgresConnection(loop: loop, config: try testConfig())
        let answers = Collector<String?>()
        try await loop.submit {
            connection.connect()
            connection.query("SELECT 'first'") { answers.append((try? $0.get())?.scalar) }
            connection.simpleQuery("SELECT 'second'") { answers.append((try? $0.get())?.first?.scalar) }
            connection.query("SELECT 'third'") { answers.append((try? $0.get())?.scalar) }
        }
        #expect(await answers.wait(for: 3) == ["first", "second", "third"])
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func sendsMoreThanTheSocketBuffersHold() async throws {
        // The server sleeps first and does not read meanwhile, so 30 MB cannot
        // be written in one go: PQflush answers 1 and the rest goes out as the
        // socket becomes writable.
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let payload = String(repeating: "x", count: 100_000)
        let lengths = Collector<Int?>()
        try await loop.submit {
            connection.query("SELECT pg_sleep(0.3)") { _ in }
            for _ in 0..<300 {
                connection.query("SELECT length($1) AS n", [.text(payload)]) { lengths.append((try? $0.get())?[0].int("n")) }
            }
        }
        let got = await lengths.wait(for: 300)
        #expect(got.count == 300)
        #expect(got.allSatisfy { $0 == 100_000 })
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func reportsRefusedConnectionWithoutWaitingForTheTimeout() async throws {
        let loop = try EventLoop()
        let port = TestServices.unusedPort()
        var config = PostgresConfig(host: "127.0.0.1", port: port, user: "postgres")
        config.connectTimeoutMs = 60_000  // far above the bound below
        let connection = PostgresConnection(loop: loop, config: config)
        let states = Collector<String>()
        try await connection.recordStates(into: states)
        let queued = Collector<PostgresError?>()
        let start = ContinuousClock.now
        try await loop.submit {
            connection.connect()
            connection.query("SELECT 1") { queued.append($0.failure) }  // waits for the attempt
        }
        let error = await #expect(throws: PostgresError.self) { try await connection.connect() }
        #expect(error?.kind == .connectFailed)
        #expect(ContinuousClock.now - start < .seconds(20))
        #expect(await queued.wait(for: 1).first??.kind == .connectFailed)
        #expect(await states.wait(for: 2).prefix(2) == ["connecting", "disconnected:connectFailed"])
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func reportsUnknownDatabase() async throws {
        let loop = try EventLoop()
        let database = uniqueName("no_such_db")
        let connection = PostgresConnection(loop: loop, config: try testConfig { $0.database = database })
        let error = await #expect(throws: PostgresError.self) { try await connection.connect() }
        #expect(error?.kind == .connectFailed)
        #expect(error?.message.contains("does not exist") == true)
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func boundsAConnectThatGetsNoAnswer() async throws {
        // A listener that never accepts: the TCP handshake completes (backlog)
        // but the server never speaks, so only the connect timeout ends it.
        let loop = try EventLoop()
        let silent = try SilentListener()
        defer { silent.close() }
        let connection = PostgresConnection(loop: loop, config: try testConfig {
            $0.port = silent.port
            $0.connectTimeoutMs = 300
            $0.parameters["sslmode"] = "disable"
        })
        let start = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) { try await connection.connect() }
        #expect(error?.kind == .connectFailed)
        // A bound for a stall, not for speed: without the timeout it would wait forever.
        #expect(ContinuousClock.now - start < .seconds(20))
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func requestsFailWhenNotConnected() async throws {
        let loop = try EventLoop()
        let connection = PostgresConnection(loop: loop, config: try testConfig())
        await #expect(throws: PostgresError.self) { try await connection.query("SELECT 1") }
        await connection.close()
        let error = await #expect(throws: PostgresError.self) { try await connection.query("SELECT 1") }
        #expect(error?.kind == .closed)
        #expect(loop.shutdown() == 0)
    }

    @Test func serverErrorFailsOnlyItsOwnQuery() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let outcomes = Collector<(Int, Result<PostgresResult, PostgresError>)>()
        try await loop.submit {
            connection.query("SELECT 1 AS n") { outcomes.append((0, $0)) }
            connection.query("SELECT 1 / 0") { outcomes.append((1, $0)) }
            connection.query("SELECT 3 AS n") { outcomes.append((2, $0)) }
        }
        let got = await outcomes.wait(for: 3).sorted { $0.0 < $1.0 }
        try #require(got.count == 3)
        #expect((try? got[0].1.get())?[0].int("n") == 1)
        #expect(got[1].1.failure?.kind == .server(sqlstate: "22012"))
        #expect(got[1].1.failure?.sqlstate == "22012")
        #expect((try? got[2].1.get())?[0].int("n") == 3)

        _ = try await connection.query("CREATE TEMP TABLE t (id int PRIMARY KEY)")
        _ = try await connection.query("INSERT INTO t VALUES ($1)", [7])
        let duplicate = await #expect(throws: PostgresError.self) {
            try await connection.query("INSERT INTO t VALUES ($1)", [7])
        }
        #expect(duplicate?.sqlstate == "23505")
        #expect(duplicate?.detail?.contains("already exists") == true)
        let next = try await connection.query("SELECT count(*) FROM t")
        #expect(next.scalar == "1")
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func transactionCommitsTogetherOrNotAtAll() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        _ = try await connection.query("CREATE TEMP TABLE t (id int PRIMARY KEY)")
        let failed = await #expect(throws: PostgresError.self) {
            try await connection.transaction([
                PostgresStatement("INSERT INTO t VALUES ($1)", [1]),
                PostgresStatement("INSERT INTO t VALUES ($1)", [1]),
                PostgresStatement("INSERT INTO t VALUES ($1)", [2]),
            ])
        }
        #expect(failed?.sqlstate == "23505")
        #expect(try await connection.query("SELECT count(*) FROM t").scalar == "0")

        let results = try await connection.transaction([
            PostgresStatement("INSERT INTO t SELECT unnest($1::int8[])", [.int64Array([1, 2, 3])]),
            "UPDATE t SET id = id + 10 WHERE id > 1",
            "SELECT id FROM t ORDER BY id",
        ])
        #expect(results.map(\.affectedRows) == [3, 2, 3])
        #expect(results[2].rows.map { $0[0] } == ["1", "12", "13"])
        #expect(try await connection.transaction([]).isEmpty)
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func roundTripsParameterTypes() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let text = "quote ' \" backslash \\ unicode ü 🚀"
        let row = try await connection.query(
            "SELECT $1::text AS t, $2::int8 AS i, $3::bool AS b, $4::float8 AS d, $5::bytea AS y, $6::text AS n, "
                + "array_length($7::text[], 1) AS len, ($7::text[])[2] AS second, ($7::text[])[3] IS NULL AS third_null",
            [.text(text), .int64(.max), true, 2.5, .bytea([0, 1, 254, 255]), nil, .textArray(["a", "b,\"}", nil])]
        )[0]
        #expect(row["t"] == text)
        #expect(row.int64("i") == .max)
        #expect(row.bool("b") == true)
        #expect(row.double("d") == 2.5)
        #expect(row.bytes("y") == [0, 1, 254, 255])
        #expect(row["n"] == nil)
        #expect(row.int("len") == 3)
        #expect(row["second"] == "b,\"}")
        #expect(row.bool("third_null") == true)
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func simpleQueryRunsMultipleStatementsInQueueOrder() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let outcomes = Collector<(String, Result<[PostgresResult], PostgresError>)>()
        try await loop.submit {
            connection.query("CREATE TEMP TABLE t (n int)") { outcomes.append(("create", $0.map { [$0] })) }
            connection.simpleQuery("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); SELECT count(*) FROM t") {
                outcomes.append(("simple", $0))
            }
            connection.query("SELECT count(*) FROM t") { outcomes.append(("after", $0.map { [$0] })) }
        }
        let got = await outcomes.wait(for: 3)
        try #require(got.map(\.0) == ["create", "simple", "after"])
        #expect((try? got[1].1.get())?.count == 3)
        #expect((try? got[1].1.get())?.last?.scalar == "2")
        #expect((try? got[2].1.get())?.first?.scalar == "2")

        let bad = await #expect(throws: PostgresError.self) {
            try await connection.simpleQuery("INSERT INTO t VALUES (3); SELECT 1/0; INSERT INTO t VALUES (4)")
        }
        #expect(bad?.sqlstate == "22012")
        #expect(try await connection.query("SELECT count(*) FROM t").scalar == "2")
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func deliversNotifications() async throws {
        let loop = try EventLoop()
        let listener = try await connected(loop)
        let sender = try await connected(loop)
        let channel = uniqueName("chan")
        let received = Collector<PostgresNotification>()
        try await loop.submit { listener.onNotification = { received.append($0) } }
        _ = try await listener.query("LISTEN \(PostgresConnection.quoteIdentifier(channel))")
        _ = try await sender.query("SELECT pg_notify($1, $2)", [.text(channel), "hello"])
        let got = await received.wait(for: 1)
        #expect(got.first?.channel == channel)
        #expect(got.first?.payload == "hello")
        await listener.close()
        await sender.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func reconnectsAfterTheBackendIsTerminated() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let killer = try await connected(loop)
        let states = Collector<String>()
        try await connection.recordStates(into: states)
        let pid = try #require(try await loop.submit { connection.backendPID })

        let pending = Collector<PostgresError?>()
        try await loop.submit {
            for _ in 0..<5 {
                connection.query("SELECT pg_sleep(30)") { pending.append($0.failure) }
            }
        }
        try await waitUntil("the backend runs the first query") {
            try await killer.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND wait_event = 'PgSleep'",
                                   [.int64(Int64(pid))]).scalar == "1"
        }
        let start = ContinuousClock.now
        let killed = try await killer.query("SELECT pg_terminate_backend($1::int)", [.int64(Int64(pid))])
        #expect(killed.scalar == "t")
        let failures = await pending.wait(for: 5)
        #expect(ContinuousClock.now - start < .seconds(20))  // not the 30 s of the queries
        #expect(failures.count == 5)
        #expect(failures.allSatisfy { $0?.kind == .disconnected })

        try await connection.connect()  // waits for the reconnection
        let again = try await connection.query("SELECT pg_backend_pid() AS pid")
        #expect(again[0].int("pid") != Int(pid))
        #expect(await states.wait(for: 3).prefix(3) == ["disconnected:disconnected", "connecting", "connected"])
        await connection.close()
        await killer.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func timedOutQueryResetsTheConnection() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let outcomes = Collector<(Int, PostgresError?)>()
        let start = ContinuousClock.now
        try await loop.submit {
            connection.query("SELECT pg_sleep(10)", timeoutMs: 200) { outcomes.append((0, $0.failure)) }
            connection.query("SELECT 1", timeoutMs: 5_000) { outcomes.append((1, $0.failure)) }
        }
        let got = await outcomes.wait(for: 2).sorted { $0.0 < $1.0 }
        try #require(got.count == 2)
        #expect(ContinuousClock.now - start < .seconds(8))  // not the 10 s of the query
        #expect(got.map { $0.1?.kind } == [.timeout, .disconnected])
        try await connection.connect()
        #expect(try await connection.query("SELECT 5").scalar == "5")
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func closeFailsEveryPendingQuery() async throws {
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let outcomes = Collector<PostgresError?>()
        try await loop.submit {
            connection.query("SELECT pg_sleep(30)") { outcomes.append($0.failure) }
            for i in 0..<1000 {
                connection.query("SELECT $1::int", [.int(i)]) { outcomes.append($0.failure) }
            }
            connection.simpleQuery("SELECT 1; SELECT 2") { outcomes.append($0.failure) }
            connection.close()
        }
        let got = await outcomes.wait(for: 1002)
        #expect(got.count == 1002)
        #expect(got.allSatisfy { $0?.kind == .closed })
        #expect(loop.shutdown() == 0)
        // The loop has stopped: no callback can come any more, and none came twice.
        #expect(outcomes.values.count == 1002)
    }

    @Test func refusesRequestsBoundToAnEndedSession() async throws {
        // The migrator binds its steps to the session holding its advisory lock.
        let loop = try EventLoop()
        let connection = try await connected(loop)
        let outcomes = Collector<(String, PostgresError?)>()
        try await loop.submit {
            let current = connection.connectedSession!
            connection.submit(["SELECT 1"], timeoutMs: nil, pinnedTo: current) { outcomes.append(("current", $0.failure)) }
            connection.submit(["SELECT 1"], timeoutMs: nil, pinnedTo: current + 1) { outcomes.append(("other", $0.failure)) }
        }
        let got = Dictionary(uniqueKeysWithValues: await outcomes.wait(for: 2).map { ($0.0, $0.1) })
        #expect(got["current"]! == nil)
        #expect(got["other"]??.kind == .disconnected)
        await connection.close()
        #expect(loop.shutdown() == 0)
    }

    @Test func resolvesAHostNameOffTheLoop() async throws {
        // Any name this machine resolves to 127.0.0.1 other than "localhost"
        // (which is mapped without a lookup).
        let candidates = [ProcessInfo.processInfo.hostName, "localhost.localdomain", "vm", "runsc"]
        guard let name = candidates.first(where: { (try? HostResolver.lookup($0).get()) == "127.0.0.1" }) else {
            return  // nothing suitable here; the lookup path stays untested
        }
        let loop = try EventLoop()
        let connection = try await connected(loop) { $0.host = name }
        #expect(try await connection.query("SELECT 1").scalar == "1")
        await connection.close()
        #expect(loop.shutdown() == 0)
    }
}
