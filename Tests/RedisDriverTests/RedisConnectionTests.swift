import Foundation
import Synchronization
import Testing
import TestSupport
import UVLoop
@testable import RedisDriver

@Suite(.tags(.integration), .needsServices) struct RedisConnectionTests {
    @Test func reportsRefusedConnectWithoutWaitingForTheTimeoutAndFailsCommandsFast() async throws {
        let loop = try EventLoop()
        // Timeouts far above the bounds below: only a refusal reported at once passes.
        let config = RedisConfig(port: TestServices.unusedPort(), commandTimeoutMs: 60_000, connectTimeoutMs: 60_000, reconnectMinMs: 60_000)
        // Timed on the loop thread, from connect() to the report, so a busy
        // test scheduler does not count against the driver.
        let (connection, failure, elapsed) = await withCheckedContinuation {
            (c: CheckedContinuation<(RedisConnection, RedisError, Duration), Never>) in
            loop.execute {
                let connection = RedisConnection(loop: loop, config: config)
                var reported = false
                let start = ContinuousClock.now
                connection.onStateChange = { state in
                    if case .disconnected(let error) = state, !reported {
                        reported = true
                        c.resume(returning: (connection, error, ContinuousClock.now - start))
                    }
                }
                connection.connect()
            }
        }
        #expect(elapsed < .seconds(20))
        #expect(failure.code == .connectFailed)
        let sendStart = ContinuousClock.now
        let error = await commandError(connection, "PING")
        #expect(error?.code == .notConnected)
        #expect(error?.commandMayHaveRun == false)
        #expect(ContinuousClock.now - sendStart < .seconds(20))
        try await close(connection)
        #expect(loop.shutdown() == 0)
    }

    @Test func refusesHostNamesInsteadOfBlockingOnDNS() async throws {
        let loop = try EventLoop()
        let config = RedisConfig(host: "redis.invalid", port: 6379, reconnectMinMs: 60_000)
        let state = try await loop.submit { () -> RedisConnection.State in
            let connection = RedisConnection(loop: loop, config: config)
            connection.connect()
            defer { connection.close() }
            return connection.state
        }
        guard case .disconnected(let error) = state else {
            Issue.record("expected .disconnected, got \(state)")
            return
        }
        #expect(error.code == .connectFailed)
        #expect(loop.shutdown() == 0)
    }

    @Test func connectTimesOutWhenTheServerNeverAnswers() async throws {
        let loop = try EventLoop()
        let (failure, elapsed) = await withCheckedContinuation { (c: CheckedContinuation<(RedisError?, Duration), Never>) in
            loop.execute {
                let start = ContinuousClock.now
                // A TCP server that accepts and never replies: TCP connects, the PING handshake stalls.
                let listener: TCPListener
                do {
                    listener = try TCPListener(loop: loop, address: SocketAddress(host: "127.0.0.1", port: 0)) { peer in
                        peer.onReadEnd = { _ in peer.close() }
                        peer.startReading()
                    }
                } catch {
                    c.resume(returning: (nil, .zero))
                    return
                }
                let config = RedisConfig(port: listener.localPort, connectTimeoutMs: 200, reconnectMinMs: 60_000)
                let connection = RedisConnection(loop: loop, config: config)
                connection.onStateChange = { state in
                    if case .disconnected(let error) = state {
                        connection.close()
                        listener.close()
                        c.resume(returning: (error, ContinuousClock.now - start))
                    }
                }
                connection.connect()
            }
        }
        guard let failure else {
            Issue.record("could not listen")
            return
        }
        #expect(failure.code == .connectFailed)
        #expect(failure.message.contains("timed out"))
        // A bound for a stall, not for speed: the alternative is waiting forever.
        #expect(elapsed >= .milliseconds(150) && elapsed < .seconds(20))
        // The accepted socket closes once it sees the EOF of the freed hiredis context.
        try await waitUntil("the loop has no handle left") { try await loop.submit { loop.openHandles } == 0 }
        #expect(loop.shutdown() == 0)
    }

    @Test func runsTenThousandPipelinedScriptCallsWithEachCompletionExactlyOnce() async throws {
        let loop = try EventLoop()
        let connection = try await startConnection(loop, try sharedRedisConfig())
        let double = RedisScript(source: "return tonumber(ARGV[1]) * 2")
        let incrby = RedisScript(source: "return redis.call('INCRBY', KEYS[1], ARGV[1])")
        try await connection.loadScript(double)  // also checks our SHA-1 against Redis'
        try await connection.loadScript(incrby)
        let counter = Array(uniqueKey("counter").utf8)
        let count = 10_000
        let tally = CompletionTally(count: count)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                // All issued in one loop turn: 10,000 commands in flight at once.
                for index in 0..<count {
                    let arg = [Array(String(index).utf8)]
                    let record: (Result<RedisValue, RedisError>) -> Void = { result in
                        if tally.record(index, result) == count { done.resume() }
                    }
                    if index % 2 == 0 {
                        connection.evalScript(double, keys: [], args: arg, record)
                    } else {
                        connection.evalScript(incrby, keys: [counter], args: arg, record)
                    }
                }
            }
        }
        let results = tally.results
        var doubledOK = 0
        var runningTotals: [Int64] = []
        for index in 0..<count {
            guard case .success(let value)? = results[index] else {
                Issue.record("command \(index) failed: \(String(describing: results[index]))")
                continue
            }
            if index % 2 == 0 {
                if value == .int(Int64(index * 2)) { doubledOK += 1 }
            } else if let total = value.int {
                runningTotals.append(total)
            }
        }
        #expect(doubledOK == count / 2)
        // Replies come back in send order, so INCRBY's running totals are the prefix sums.
        var expected: Int64 = 0
        let prefixSums = stride(from: 1, to: count, by: 2).map { expected += Int64($0); return expected }
        #expect(runningTotals == prefixSums)
        #expect(try await connection.command([Array("GET".utf8), counter]).int == 25_000_000)
        _ = try await connection.command([Array("DEL".utf8), counter])
        try await close(connection)
        #expect(loop.shutdown() == 0)
        #expect(tally.calls.allSatisfy { $0 == 1 })
    }

    @Test func recoversFromNoscriptAfterScriptFlushForManyConcurrentCalls() async throws {
        let redis = try OwnRedis()  // SCRIPT FLUSH must not hit the shared server
        let loop = try EventLoop()
        let connection = try await startConnection(loop, redis.config)
        let script = RedisScript(source: "return 'v:' .. ARGV[1]")
        #expect(try await connection.evalScript(script, keys: [], args: [Array("warm".utf8)]) == .bulk(Array("v:warm".utf8)))
        #expect(try await connection.command("SCRIPT", "FLUSH") == .status("OK"))
        #expect(try await connection.command("SCRIPT", "EXISTS", script.sha1) == .array([.int(0)]))

        let count = 2_000
        let tally = CompletionTally(count: count)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                for index in 0..<count {
                    connection.evalScript(script, keys: [], args: [Array(String(index).utf8)]) { result in
                        if tally.record(index, result) == count { done.resume() }
                    }
                }
            }
        }
        let results = tally.results
        let correct = (0..<count).filter { index in
            if case .success(.bulk(let bytes))? = results[index] { return bytes == Array("v:\(index)".utf8) }
            return false
        }.count
        #expect(correct == count)
        #expect(tally.calls.allSatisfy { $0 == 1 })
        // The fallback EVAL cached the script again: EVALSHA works from here on.
        #expect(try await connection.command("SCRIPT", "EXISTS", script.sha1) == .array([.int(1)]))
        try await close(connection)
        #expect(loop.shutdown() == 0)
    }

    @Test func reconnectsAfterRedisIsKilledAndRestarted() async throws {
        let redis = try OwnRedis()
        let loop = try EventLoop()
        var config = redis.config
        config.reconnectMinMs = 20
        config.reconnectMaxMs = 200
        config.connectTimeoutMs = 1_000
        // A command waiting for its answer would give up after a minute: far above the bounds below.
        config.commandTimeoutMs = 60_000
        let log = StateLog()
        let settings = config
        let connection = try await loop.submit {
            let connection = RedisConnection(loop: loop, config: settings)
            connection.onStateChange = { log.append($0) }
            connection.connect()
            return connection
        }
        try await connection.waitUntilConnected(timeoutMs: 3_000)
        #expect(try await connection.command("SET", "k", "v") == .status("OK"))

        // A command in flight when the server dies fails promptly, it does not hang.
        let blocked = Task { await commandError(connection, "BLPOP", "empty", "0") }
        try await waitUntil("BLPOP blocks on the server") {
            try redis.cli("INFO", "clients").contains("blocked_clients:1")
        }
        let killedAt = ContinuousClock.now
        redis.kill()
        let inFlightError = await blocked.value
        #expect(inFlightError?.code == .disconnected)
        #expect(ContinuousClock.now - killedAt < .seconds(20))

        // While Redis is down every command fails fast.
        for _ in 0..<5 {
            let sentAt = ContinuousClock.now
            let error = await commandError(connection, "PING")
            #expect(error != nil)
            #expect(ContinuousClock.now - sentAt < .seconds(20))
        }
        // It keeps trying: a reconnect attempt is refused while Redis is down.
        try await waitUntil("a reconnect attempt failed") {
            log.all.contains { if case .disconnected(let e) = $0 { e.code == .connectFailed } else { false } }
        }

        try redis.start()
        try await connection.waitUntilConnected(timeoutMs: 5_000)
        #expect(try await connection.command("PING") == .status("PONG"))
        #expect(try await connection.command("GET", "k") == .null)  // a fresh server: nothing persisted

        let states = log.all
        let firstDown = states.firstIndex { if case .disconnected = $0 { true } else { false } }
        #expect(firstDown != nil)
        #expect(states.last == .connected)
        #expect(states.contains { if case .disconnected(let e) = $0 { e.code == .connectFailed } else { false } })
        try await close(connection)
        #expect(loop.shutdown() == 0)
        redis.kill()
    }

    @Test func roundTripsBinaryKeysAndValues() async throws {
        let loop = try EventLoop()
        let connection = try await startConnection(loop, try sharedRedisConfig())
        let key = Array(uniqueKey("bin").utf8) + [0x00, 0xFF, 0x0D, 0x0A]
        let value: [UInt8] = (0...255).map(UInt8.init) + [0x00, 0x00, 0xFF, 0x0D, 0x0A]
        #expect(try await connection.command([Array("SET".utf8), key, value]) == .status("OK"))
        #expect(try await connection.command([Array("GET".utf8), key]) == .bulk(value))
        #expect(try await connection.command([Array("STRLEN".utf8), key]) == .int(Int64(value.count)))
        // The key without its NUL-and-after tail is a different key.
        #expect(try await connection.command([Array("GET".utf8), Array(key.prefix(key.count - 4))]) == .null)
        #expect(try await connection.command([Array("SET".utf8), key, []]) == .status("OK"))
        #expect(try await connection.command([Array("GET".utf8), key]) == .bulk([]))
        _ = try await connection.command([Array("DEL".utf8), key])
        try await close(connection)
        #expect(loop.shutdown() == 0)
    }

    @Test func copiesNestedRepliesAndReportsErrorReplies() async throws {
        let loop = try EventLoop()
        let connection = try await startConnection(loop, try sharedRedisConfig())
        let script = RedisScript(source: "return {1, 'two', {3, false}, redis.error_reply('BAD nested')}")
        let value = try await connection.evalScript(script, keys: [], args: [])
        #expect(value == .array([.int(1), .bulk(Array("two".utf8)), .array([.int(3), .null]), .error("BAD nested")]))
        let error = await commandError(connection, "NOSUCHCOMMAND")
        #expect(error?.code == .replyError)
        #expect(error?.replyErrorPrefix == "ERR")
        // An error reply leaves the connection usable.
        #expect(try await connection.command("PING") == .status("PONG"))
        try await close(connection)
        #expect(loop.shutdown() == 0)
    }

    @Test func timesOutAStuckCommandAndRecovers() async throws {
        let loop = try EventLoop()
        var config = try sharedRedisConfig()
        config.commandTimeoutMs = 200
        config.reconnectMinMs = 20
        let connection = try await startConnection(loop, config)
        let key = uniqueKey("never-pushed")
        let start = ContinuousClock.now
        let tally = CompletionTally(count: 2)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                // BLPOP blocks only this client (DEBUG SLEEP would stall the shared server).
                connection.send("BLPOP", key, "0") { if tally.record(0, $0) == 2 { done.resume() } }
                connection.send("PING") { if tally.record(1, $0) == 2 { done.resume() } }
            }
        }
        let elapsed = ContinuousClock.now - start
        let results = tally.results
        guard case .failure(let timedOut)? = results[0], case .failure(let behind)? = results[1] else {
            Issue.record("expected both to fail: \(results)")
            return
        }
        #expect(timedOut.code == .timeout)
        #expect(behind.code == .disconnected)  // stuck behind it on the reset connection
        #expect(elapsed >= .milliseconds(150) && elapsed < .seconds(20))
        try await connection.waitUntilConnected(timeoutMs: 3_000)
        #expect(try await connection.command("PING") == .status("PONG"))
        try await close(connection)
        #expect(loop.shutdown() == 0)
    }

    @Test func closeFailsEveryCommandInFlightOnceAndLeavesNoHandle() async throws {
        let loop = try EventLoop()
        let connection = try await startConnection(loop, try sharedRedisConfig())
        let key = uniqueKey("blocked")
        let count = 501
        let tally = CompletionTally(count: count)
        let (stateAfter, lateError) = try await loop.submit { () -> (RedisConnection.State, RedisError?) in
            connection.send("BLPOP", key, "0") { _ = tally.record(0, $0) }
            for index in 1..<count {
                connection.send("GET", key) { _ = tally.record(index, $0) }
            }
            connection.close()
            var late: RedisError?
            connection.send("PING") { if case .failure(let e) = $0 { late = e } }
            return (connection.state, late)
        }
        #expect(stateAfter == .closed)
        #expect(lateError?.code == .notConnected)
        #expect(tally.calls.allSatisfy { $0 == 1 })
        let closedCount = tally.results.filter { if case .failure(let e)? = $0 { e.code == .closed } else { false } }.count
        #expect(closedCount == count)
        #expect(loop.shutdown() == 0)
        #expect(tally.calls.allSatisfy { $0 == 1 })  // nothing completed twice during teardown
    }

    @Test func closeFromInsideACompletionFailsTheRestAndRefusesNewCommands() async throws {
        let loop = try EventLoop()
        let connection = try await startConnection(loop, try sharedRedisConfig())
        let count = 1_000
        let tally = CompletionTally(count: count)
        let retries = Mutex<[RedisError.Code]>([])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                for index in 0..<count {
                    connection.send("PING") { result in
                        // The first reply closes the connection while hiredis is
                        // inside its reply callback (its free is deferred to after it).
                        if index == 0 { connection.close() }
                        if index == 1 {
                            connection.send("PING") { retry in
                                if case .failure(let e) = retry { retries.withLock { $0.append(e.code) } }
                            }
                        }
                        if tally.record(index, result) == count { done.resume() }
                    }
                }
            }
        }
        let results = tally.results
        #expect(results[0].map { (try? $0.get()) == .status("PONG") } == true)
        let closed = results.dropFirst().filter { if case .failure(let e)? = $0 { e.code == .closed } else { false } }.count
        #expect(closed == count - 1)
        #expect(retries.withLock { $0 } == [.notConnected])
        #expect(loop.shutdown() == 0)
        #expect(tally.calls.allSatisfy { $0 == 1 })
    }

    @Test func authenticatesAndSelectsTheDatabaseOnEveryConnect() async throws {
        let redis = try OwnRedis(extraArguments: ["--requirepass", "s3cret"])
        let loop = try EventLoop()
        var wrong = try RedisConfig(url: "redis://:nope@127.0.0.1:\(redis.port)")
        wrong.reconnectMinMs = 60_000
        let refused = try await startConnection(loop, wrong, waitMs: nil)
        let failure = await withCheckedContinuation { (c: CheckedContinuation<RedisError?, Never>) in
            loop.execute {
                if case .disconnected(let error) = refused.state { c.resume(returning: error); return }
                refused.observeState { state in
                    if case .disconnected(let error) = state { c.resume(returning: error); return true }
                    return false
                }
            }
        }
        #expect(failure?.code == .connectFailed)
        #expect(failure?.message.contains("AUTH") == true)
        try await close(refused)

        let db2 = try await startConnection(loop, try RedisConfig(url: "redis://:s3cret@127.0.0.1:\(redis.port)/2"))
        let db0 = try await startConnection(loop, try RedisConfig(url: "redis://:s3cret@localhost:\(redis.port)"))
        #expect(try await db2.command("SET", "where", "two") == .status("OK"))
        #expect(try await db0.command("GET", "where") == .null)
        #expect(try await db2.command("GET", "where").string == "two")
        try await close(db2)
        try await close(db0)
        #expect(loop.shutdown() == 0)
    }
}
