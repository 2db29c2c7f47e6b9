// QueueScripts: the Lua scripts of Sources/RunQueueStorage/Lua, read from the
// module's resource bundle once per process and assembled for EVALSHA: the
// script's `#!lua` shebang line first (Redis requires it there), then
// lib.lua, then the script body.
import Foundation
import RedisDriver

public struct QueueScripts: Sendable {
    public let enqueue: RedisScript
    public let claim: RedisScript
    public let ack: RedisScript
    public let nack: RedisScript
    public let heartbeat: RedisScript
    public let release: RedisScript
    public let lapse: RedisScript
    public let outboxDone: RedisScript
    public let pause: RedisScript
    public let present: RedisScript
    public let epoch: RedisScript
    public let limits: RedisScript
    public let stats: RedisScript
    public let read: RedisScript
    public let expire: RedisScript
    public let expiryLease: RedisScript

    /// Every script by name, for tests that run them all (e.g. on a cluster node).
    public var all: [String: RedisScript] {
        ["enqueue": enqueue, "claim": claim, "ack": ack, "nack": nack, "heartbeat": heartbeat, "release": release,
         "lapse": lapse, "outbox_done": outboxDone, "pause": pause, "present": present, "epoch": epoch, "limits": limits, "stats": stats, "read": read, "expire": expire,
         "expiry_lease": expiryLease]
    }

    public static let shared: QueueScripts = {
        do { return try QueueScripts() } catch { preconditionFailure("Lua scripts missing from the bundle: \(error)") }
    }()

    init() throws {
        let lib = try Self.file("lib")
        func load(_ name: String) throws -> RedisScript {
            let body = try Self.file(name)
            guard body.hasPrefix("#!lua") else { throw QueueStoreError(.internal, "\(name).lua must start with #!lua") }
            let newline = body.firstIndex(of: "\n") ?? body.endIndex
            return RedisScript(source: String(body[..<newline]) + "\n" + lib + "\n" + String(body[newline...]))
        }
        enqueue = try load("enqueue")
        claim = try load("claim")
        ack = try load("ack")
        nack = try load("nack")
        heartbeat = try load("heartbeat")
        release = try load("release")
        lapse = try load("lapse")
        outboxDone = try load("outbox_done")
        pause = try load("pause")
        present = try load("present")
        epoch = try load("epoch")
        limits = try load("limits")
        stats = try load("stats")
        read = try load("read")
        expire = try load("expire")
        expiryLease = try load("expiry_lease")
    }

    private static func file(_ name: String) throws -> String {
        guard let url = Bundle.module.url(forResource: name, withExtension: "lua", subdirectory: "Lua") else {
            throw QueueStoreError(.internal, "\(name).lua is not in the bundle")
        }
        return try String(contentsOf: url, encoding: .utf8)
    }
}
