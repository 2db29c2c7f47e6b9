import Foundation
import Synchronization
import Testing
import TestSupport
import UVLoop
@testable import RedisDriver

/// Everything a subscriber reported, in order (thread-safe).
final class SubscriberLog: Sendable {
    struct Message: Equatable, Sendable {
        let channel: String
        let payload: [UInt8]
    }
    private let state = Mutex<(states: [RedisConnection.State], messages: [Message])>(([], []))

    func append(_ next: RedisConnection.State) { state.withLock { $0.states.append(next) } }
    func received(_ channel: String, _ payload: [UInt8]) {
        state.withLock { $0.messages.append(Message(channel: channel, payload: payload)) }
    }

    var states: [RedisConnection.State] { state.withLock { $0.states } }
    var messages: [Message] { state.withLock { $0.messages } }
    var connectedCount: Int { states.filter { $0 == .connected }.count }
    var disconnectErrors: [RedisError] {
        states.compactMap { if case .disconnected(let error) = $0 { error } else { nil } }
    }
}

/// Creates a subscriber on `loop` that records into `log`, and connects it.
func startSubscriber(_ loop: EventLoop, _ config: RedisConfig, _ channels: [String], _ log: SubscriberLog,
                     healthCheckIntervalMs: UInt64 = 10_000) async throws -> RedisSubscriber {
    return try await loop.submit {
        let subscriber = RedisSubscriber(loop: loop, config: config, channels: channels)
        subscriber.healthCheckIntervalMs = healthCheckIntervalMs
        subscriber.onStateChange = { log.append($0) }
        subscriber.onMessage = { log.received($0, $1) }
        subscriber.connect()
        return subscriber
    }
}

func close(_ subscriber: RedisSubscriber) async throws {
    try await subscriber.loop.submit { subscriber.close() }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(_ timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}

func publish(_ connection: RedisConnection, _ channel: String, _ payload: [UInt8]) async throws -> RedisValue {
    try await connection.command([Array("PUBLISH".utf8), Array(channel.utf8), payload])
}

/// Polls PUBSUB NUMSUB until `channel` has `expected` subscribers (the server
/// notices a closed socket asynchronously); returns the last count seen.
func subscriberCount(_ connection: RedisConnection, _ channel: String, becomes expected: Int64) async throws -> Int64? {
    var count: Int64?
    for _ in 0..<200 {
        count = try await connection.command("PUBSUB", "NUMSUB", channel).array?.last?.int
        if count == expected { break }
        try await Task.sleep(for: .milliseconds(5))
    }
    return count
}

@Suite(.tags(.integration), .needsServices) struct RedisSubscriberTests {
    @Test func deliversBinarySafeMessagesWithTheirChannelOnSeveralChannels() async throws {
        let loop = try EventLoop()
        let config = try sharedRedisConfig()
        let channels = [uniqueKey("wake-a"), uniqueKey("wake-b"), uniqueKey("wake-c")]
        let log = SubscriberLog()
        let subscriber = try await startSubscriber(loop, config, channels + [channels[0]], log)
        #expect(subscriber.channels == channels)  // the duplicate is dropped
        #expect(await eventually { log.connectedCount == 1 })
        let publisher = try await startConnection(loop, config)

        let sent: [SubscriberLog.Message] = [
            .init(channel: channels[0], payload: [0x00, 0xFF]),
            .init(channel: channels[1], payload: (0...255).map(UInt8.init) + [0x00]),
            .init(channel: channels[2], payload: []),
            .init(channel: channels[0], payload: [0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0xFF]),
        ]
        // `.connected` came after every SUBSCRIBE was confirmed, so each
        // PUBLISH already reaches exactly this one subscriber.
        for message in sent {
            #expect(try await publish(publisher, message.channel, message.payload) == .int(1))
        }
        #expect(try await publish(publisher, uniqueKey("not-subscribed"), [1]) == .int(0))
        // A last message on the first channel: once it arrived, everything before it has.
        let last = SubscriberLog.Message(channel: channels[0], payload: Array("last".utf8))
        #expect(try await publish(publisher, last.channel, last.payload) == .int(1))
        #expect(await eventually { log.messages.count >= sent.count + 1 })
        #expect(log.messages == sent + [last])
        #expect(log.states == [.connecting, .connected])

        try await close(subscriber)
        #expect(log.states.last == .closed)
        #expect(try await subscriberCount(publisher, channels[0], becomes: 0) == 0)  // close() dropped the subscription
        try await close(publisher)
        #expect(loop.shutdown() == 0)
    }

    @Test func deliversABurstOfAThousandMessagesInOrder() async throws {
        let loop = try EventLoop()
        let config = try sharedRedisConfig()
        let channel = uniqueKey("burst")
        let log = SubscriberLog()
        let subscriber = try await startSubscriber(loop, config, [channel], log)
        #expect(await eventually { log.connectedCount == 1 })
        let publisher = try await startConnection(loop, config)

        let count = 1_000
        @Sendable func payload(_ index: Int) -> [UInt8] {
            withUnsafeBytes(of: UInt32(index).bigEndian) { Array($0) } + [0x00, 0xFF]
        }
        let tally = CompletionTally(count: count)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                // All pipelined in one loop turn.
                for index in 0..<count {
                    publisher.send([Array("PUBLISH".utf8), Array(channel.utf8), payload(index)]) { result in
                        if tally.record(index, result) == count { done.resume() }
                    }
                }
            }
        }
        #expect(tally.results.allSatisfy { if case .success(.int(1))? = $0 { true } else { false } })
        #expect(await eventually(.seconds(10)) { log.messages.count >= count })
        let messages = log.messages
        #expect(messages.count == count)
        #expect(messages.allSatisfy { $0.channel == channel })
        #expect(messages.map(\.payload) == (0..<count).map(payload))
        #expect(log.states == [.connecting, .connected])

        try await close(subscriber)
        try await close(publisher)
        #expect(loop.shutdown() == 0)
    }

    @Test func resubscribesAfterRedisIsKilledAndRestarted() async throws {
        let redis = try OwnRedis()
        let loop = try EventLoop()
        var config = redis.config
        config.reconnectMinMs = 20
        config.reconnectMaxMs = 200
        config.connectTimeoutMs = 1_000
        let log = SubscriberLog()
        let subscriber = try await startSubscriber(loop, config, ["wake:1", "wake:2"], log)
        let publisher = try await startConnection(loop, config)
        #expect(await eventually { log.connectedCount == 1 })
        #expect(try await publish(publisher, "wake:1", Array("before".utf8)) == .int(1))
        #expect(await eventually { log.messages.count == 1 })

        let killedAt = ContinuousClock.now
        redis.kill()
        #expect(await eventually { !log.disconnectErrors.isEmpty })
        #expect(ContinuousClock.now - killedAt < .seconds(20))
        #expect(log.disconnectErrors.first?.code == .disconnected)  // lost while subscribed
        #expect(try await loop.submit { subscriber.isConnected } == false)

        try redis.start()
        #expect(await eventually { log.connectedCount == 2 })
        try await publisher.waitUntilConnected(timeoutMs: 5_000)
        // Subscribed again to both channels on the fresh server.
        #expect(try await publish(publisher, "wake:2", Array("after".utf8)) == .int(1))
        #expect(try await publish(publisher, "wake:1", [0x00, 0xFF]) == .int(1))
        #expect(await eventually { log.messages.count >= 3 })
        #expect(log.messages == [
            .init(channel: "wake:1", payload: Array("before".utf8)),
            .init(channel: "wake:2", payload: Array("after".utf8)),
            .init(channel: "wake:1", payload: [0x00, 0xFF]),
        ])
        let states = log.states
        #expect(states.first == .connecting)
        #expect(states.last == .connected)
        // Every .connected is preceded by a .connecting: each is a fresh subscription.
        for (index, state) in states.enumerated() where state == .connected {
            #expect(index > 0 && states[index - 1] == .connecting)
        }

        try await close(subscriber)
        try await close(publisher)
        #expect(loop.shutdown() == 0)
        redis.kill()
    }

    @Test func healthCheckResetsASilentConnectionAndResubscribes() async throws {
        let redis = try OwnRedis()
        let loop = try EventLoop()
        var config = redis.config
        config.commandTimeoutMs = 300  // health-check reply deadline
        config.connectTimeoutMs = 300
        config.reconnectMinMs = 20
        config.reconnectMaxMs = 100
        let log = SubscriberLog()
        let subscriber = try await startSubscriber(loop, config, ["wake"], log, healthCheckIntervalMs: 50)
        let publisher = try await startConnection(loop, redis.config)
        let info = try await publisher.command("INFO", "server").string ?? ""
        let pidLine = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }
        let pid = try #require(pidLine.flatMap { pid_t($0.dropFirst("process_id:".count)) })
        #expect(await eventually { log.connectedCount == 1 })

        // Health checks on a live server pass: still connected after several rounds.
        // The health check is a SUBSCRIBE of the first channel again.
        func subscribes() async throws -> Int {
            let stats = try await publisher.command("INFO", "commandstats").string ?? ""
            let line = stats.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_subscribe:") } ?? ""
            return Int(line.split(separator: ",").first?.split(separator: "=").last ?? "") ?? 0
        }
        try await waitUntil("five health checks answered") { try await subscribes() >= 6 }
        #expect(log.states == [.connecting, .connected])

        // A stopped server keeps the socket open but answers nothing: no FIN, no RST.
        let stoppedAt = ContinuousClock.now
        #expect(Foundation.kill(pid, SIGSTOP) == 0)
        defer { _ = Foundation.kill(pid, SIGCONT) }
        #expect(await eventually { !log.disconnectErrors.isEmpty })
        let detectedAfter = ContinuousClock.now - stoppedAt
        #expect(detectedAfter >= .milliseconds(150) && detectedAfter < .seconds(20))
        #expect(log.disconnectErrors.first?.code == .timeout)
        // While stopped, reconnects connect over TCP but cannot subscribe: connect timeouts.
        #expect(await eventually { log.disconnectErrors.contains { $0.code == .connectFailed } })
        #expect(log.connectedCount == 1)

        #expect(Foundation.kill(pid, SIGCONT) == 0)
        #expect(await eventually { log.connectedCount == 2 })
        #expect(try await publish(publisher, "wake", [0xFF, 0x00]) == .int(1))
        #expect(await eventually { log.messages.count == 1 })
        #expect(log.messages == [.init(channel: "wake", payload: [0xFF, 0x00])])

        try await close(subscriber)
        try await close(publisher)
        #expect(loop.shutdown() == 0)
        redis.kill()
    }

    @Test func authenticatesBeforeSubscribing() async throws {
        let redis = try OwnRedis(extraArguments: ["--requirepass", "s3cret"])
        let loop = try EventLoop()
        var wrong = try RedisConfig(url: "redis://:nope@127.0.0.1:\(redis.port)")
        wrong.reconnectMinMs = 60_000
        let refusedLog = SubscriberLog()
        let refused = try await startSubscriber(loop, wrong, ["wake"], refusedLog)
        #expect(await eventually { !refusedLog.disconnectErrors.isEmpty })
        #expect(refusedLog.disconnectErrors.first?.code == .connectFailed)
        #expect(refusedLog.disconnectErrors.first?.message.contains("AUTH") == true)
        try await close(refused)

        let right = try RedisConfig(url: "redis://:s3cret@127.0.0.1:\(redis.port)/3")
        let log = SubscriberLog()
        let subscriber = try await startSubscriber(loop, right, ["wake"], log)
        #expect(await eventually { log.connectedCount == 1 })
        // Pub/sub ignores the database: a publisher on db 0 reaches it.
        let publisher = try await startConnection(loop, try RedisConfig(url: "redis://:s3cret@127.0.0.1:\(redis.port)"))
        #expect(try await publish(publisher, "wake", [7]) == .int(1))
        #expect(await eventually { log.messages.count == 1 })
        #expect(log.messages == [.init(channel: "wake", payload: [7])])
        try await close(subscriber)
        try await close(publisher)
        #expect(loop.shutdown() == 0)
        redis.kill()
    }

    @Test func closeLeavesNoHandleWhileConnectingOrWaitingToReconnect() async throws {
        let loop = try EventLoop()
        let shared = try sharedRedisConfig()
        // Closed in the same loop turn as connect(): TCP has not even connected.
        let stateAfter = try await loop.submit { () -> RedisConnection.State in
            let subscriber = RedisSubscriber(loop: loop, config: shared, channels: ["wake"])
            subscriber.connect()
            subscriber.close()
            subscriber.close()  // idempotent
            return subscriber.state
        }
        #expect(stateAfter == .closed)

        // Closed while waiting for a reconnect after a refused connect.
        let refusedLog = SubscriberLog()
        let refused = try await startSubscriber(loop, RedisConfig(port: TestServices.unusedPort(), reconnectMinMs: 60_000),
                                                ["wake"], refusedLog)
        #expect(await eventually(.seconds(1)) { refusedLog.disconnectErrors.first?.code == .connectFailed })
        try await close(refused)
        #expect(refusedLog.states.last == .closed)

        // Never connected at all.
        _ = try await loop.submit { RedisSubscriber(loop: loop, config: shared, channels: ["wake"]).close() }

        // Host names are refused instead of blocking the loop on DNS.
        let namedLog = SubscriberLog()
        let named = try await startSubscriber(loop, RedisConfig(host: "redis.invalid", reconnectMinMs: 60_000), ["wake"], namedLog)
        #expect(namedLog.disconnectErrors.first?.code == .connectFailed)
        try await close(named)
        #expect(loop.shutdown() == 0)
    }

    @Test func closeFromInsideOnMessageStopsDeliveryAndLeavesNoHandle() async throws {
        let loop = try EventLoop()
        let config = try sharedRedisConfig()
        let channel = uniqueKey("close-inside")
        let log = SubscriberLog()
        let subscriber = try await startSubscriber(loop, config, [channel], log)
        #expect(await eventually { log.connectedCount == 1 })
        try await loop.submit {
            subscriber.onMessage = { [unowned subscriber] channel, payload in
                log.received(channel, payload)
                subscriber.close()  // inside hiredis' reply callback: the free is deferred
            }
        }
        let publisher = try await startConnection(loop, config)
        // Both in one loop turn, so both usually arrive in one read.
        let tally = CompletionTally(count: 2)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                for index in 0..<2 {
                    publisher.send([Array("PUBLISH".utf8), Array(channel.utf8), [UInt8(index)]]) { result in
                        if tally.record(index, result) == 2 { done.resume() }
                    }
                }
            }
        }
        #expect(await eventually { log.states.last == .closed })
        #expect(try await subscriberCount(publisher, channel, becomes: 0) == 0)
        #expect(log.messages == [.init(channel: channel, payload: [0])])
        try await close(publisher)
        #expect(loop.shutdown() == 0)
    }
}
