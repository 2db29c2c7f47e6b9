// ServerConfig: every setting of runqueued, read from environment variables
// and mirrored by command-line flags (`--listen 127.0.0.1:7420` or
// `--listen=...`; a flag wins over the environment). Each key is documented
// in README.md with its default. Parsing is pure so it is tested without a
// process; an invalid value is one `ConfigError` naming the key.
import Logging
import RunQueueCore
import RunQueueEngine
import RunQueueExpiry
import RunQueueStorage
import UVLoop

public struct ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Every setting of runqueued: the transport's here, the engine's in
/// `engine` (Sources/RunQueueEngine/EngineConfig.swift), reachable as
/// members of this value too (`config.redisURL`).
@dynamicMemberLookup
public struct ServerConfig: Sendable {
    public var listen = SocketAddress(host: "127.0.0.1", port: 7420)
    /// Largest frame body accepted or sent, in bytes (protocol default 1 MiB).
    public var maxFrameBytes = 1 << 20
    public var logLevel: Logger.Level = .info
    /// A connection with no call in progress and no traffic for this long is closed; 0 = never.
    public var idleTimeoutMs: UInt64 = 300_000
    /// Calls in progress per connection before the server stops reading from it.
    public var maxCallsPerConnection = 1024
    /// Response bytes queued for a connection before the server stops reading from it.
    public var maxQueuedResponseBytes = 4 << 20
    /// How long SIGTERM/SIGINT waits for calls in progress before closing anyway.
    public var shutdownGraceMs: UInt64 = 10_000
    /// The stores and the engine's tunables.
    public var engine = EngineConfig()
    /// False runs the protocol layer alone (Hello, Ping, Cancel; engine
    /// methods answer UNAVAILABLE): for tests of the transport. Not a setting.
    public var storesEnabled = true

    public subscript<Value>(dynamicMember keyPath: WritableKeyPath<EngineConfig, Value>) -> Value {
        get { engine[keyPath: keyPath] }
        set { engine[keyPath: keyPath] = newValue }
    }

    public init() {}

    /// One entry per setting: environment name, flag, and how to apply a value.
    struct Key: Sendable {
        let env: String
        let flag: String
        let apply: @Sendable (inout ServerConfig, String) throws(ConfigError) -> Void
    }

    static let keys: [Key] = [
        Key(env: "RUNQUEUE_LISTEN", flag: "--listen") { config, value throws(ConfigError) in
            guard let address = SocketAddress(parsing: value) else {
                throw ConfigError("RUNQUEUE_LISTEN must be host:port with a numeric host (e.g. 127.0.0.1:7420), got \"\(value)\"")
            }
            config.listen = address
        },
        Key(env: "RUNQUEUE_REDIS_URL", flag: "--redis-url") { config, value throws(ConfigError) in
            guard value.hasPrefix("redis://") else { throw ConfigError("RUNQUEUE_REDIS_URL must look like redis://host:port[/db], got \"\(value)\"") }
            config.redisURL = value
        },
        Key(env: "RUNQUEUE_DATABASE_URL", flag: "--database-url") { config, value throws(ConfigError) in
            guard value.hasPrefix("postgres://") || value.hasPrefix("postgresql://") else {
                throw ConfigError("RUNQUEUE_DATABASE_URL must look like postgres://user[:password]@host:port/db")
            }
            config.databaseURL = value
        },
        Key(env: "RUNQUEUE_MAX_FRAME_BYTES", flag: "--max-frame-bytes") { config, value throws(ConfigError) in
            config.maxFrameBytes = try integer(value, key: "RUNQUEUE_MAX_FRAME_BYTES", in: 1024...(64 << 20))
        },
        Key(env: "RUNQUEUE_LOG_LEVEL", flag: "--log-level") { config, value throws(ConfigError) in
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw ConfigError("RUNQUEUE_LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical; got \"\(value)\"")
            }
            config.logLevel = level
        },
        Key(env: "RUNQUEUE_IDLE_TIMEOUT_MS", flag: "--idle-timeout-ms") { config, value throws(ConfigError) in
            config.idleTimeoutMs = UInt64(try integer(value, key: "RUNQUEUE_IDLE_TIMEOUT_MS", in: 0...86_400_000))
        },
        Key(env: "RUNQUEUE_MAX_CALLS_PER_CONNECTION", flag: "--max-calls-per-connection") { config, value throws(ConfigError) in
            config.maxCallsPerConnection = try integer(value, key: "RUNQUEUE_MAX_CALLS_PER_CONNECTION", in: 1...1_000_000)
        },
        Key(env: "RUNQUEUE_MAX_QUEUED_RESPONSE_BYTES", flag: "--max-queued-response-bytes") { config, value throws(ConfigError) in
            config.maxQueuedResponseBytes = try integer(value, key: "RUNQUEUE_MAX_QUEUED_RESPONSE_BYTES", in: 65_536...(1 << 30))
        },
        Key(env: "RUNQUEUE_SHUTDOWN_GRACE_MS", flag: "--shutdown-grace-ms") { config, value throws(ConfigError) in
            config.shutdownGraceMs = UInt64(try integer(value, key: "RUNQUEUE_SHUTDOWN_GRACE_MS", in: 0...600_000))
        },
        Key(env: "RUN_ENGINE_RUN_QUEUE_SHARD_COUNT", flag: "--shard-count") { config, value throws(ConfigError) in
            config.shardCount = try integer(value, key: "RUN_ENGINE_RUN_QUEUE_SHARD_COUNT", in: ShardMap.configurableShardCounts)
        },
        Key(env: "RUNQUEUE_MESSAGE_FORMAT", flag: "--message-format") { config, value throws(ConfigError) in
            guard let format = MessageFormatChoice(rawValue: value.lowercased()) else {
                throw ConfigError("RUNQUEUE_MESSAGE_FORMAT must be v2, v3 or v4, got \"\(value)\"")
            }
            config.queue.messageFormat = format
        },
        Key(env: "RUN_ENGINE_DEFAULT_MAX_TTL", flag: "--default-max-ttl") { config, value throws(ConfigError) in
            do {
                config.defaultMaxTTLMs = try TTLParser.milliseconds(value, field: "RUN_ENGINE_DEFAULT_MAX_TTL")
            } catch let error as TTLError {
                throw ConfigError(error.message)
            } catch {
                throw ConfigError("RUN_ENGINE_DEFAULT_MAX_TTL must be a duration such as 24h")
            }
        },
        Key(env: "RUNQUEUE_DEFAULT_LEASE_MS", flag: "--default-lease-ms") { config, value throws(ConfigError) in
            config.queue.defaultLeaseMs = Int64(try integer(value, key: "RUNQUEUE_DEFAULT_LEASE_MS", in: 1000...86_400_000))
        },
        Key(env: "RUNQUEUE_DEFAULT_ENV_CONCURRENCY_LIMIT", flag: "--default-env-concurrency-limit") { config, value throws(ConfigError) in
            config.queue.defaultEnvironmentLimit = try integer(value, key: "RUNQUEUE_DEFAULT_ENV_CONCURRENCY_LIMIT", in: 0...1_000_000)
        },
        Key(env: "RUNQUEUE_DEFAULT_BURST_FACTOR", flag: "--default-burst-factor") { config, value throws(ConfigError) in
            guard let burst = Double(value), burst.isFinite, burst >= 1, burst <= 100 else {
                throw ConfigError("RUNQUEUE_DEFAULT_BURST_FACTOR must be a number in 1...100, got \"\(value)\"")
            }
            config.queue.defaultBurstFactor = burst
        },
        Key(env: "RUNQUEUE_MAX_ATTEMPTS", flag: "--max-attempts") { config, value throws(ConfigError) in
            let b = config.queue.backoff
            config.queue.backoff = NackBackoff(factor: b.factor, minMs: b.minMs, maxMs: b.maxMs,
                                               maxAttempts: UInt32(try integer(value, key: "RUNQUEUE_MAX_ATTEMPTS", in: 1...1000)))
        },
        Key(env: "RUNQUEUE_BACKOFF_MIN_MS", flag: "--backoff-min-ms") { config, value throws(ConfigError) in
            let b = config.queue.backoff
            config.queue.backoff = NackBackoff(factor: b.factor, minMs: Int64(try integer(value, key: "RUNQUEUE_BACKOFF_MIN_MS", in: 0...86_400_000)),
                                               maxMs: b.maxMs, maxAttempts: b.maxAttempts)
        },
        Key(env: "RUNQUEUE_BACKOFF_MAX_MS", flag: "--backoff-max-ms") { config, value throws(ConfigError) in
            let b = config.queue.backoff
            config.queue.backoff = NackBackoff(factor: b.factor, minMs: b.minMs,
                                               maxMs: Int64(try integer(value, key: "RUNQUEUE_BACKOFF_MAX_MS", in: 0...604_800_000)),
                                               maxAttempts: b.maxAttempts)
        },
        Key(env: "RUNQUEUE_BACKOFF_FACTOR", flag: "--backoff-factor") { config, value throws(ConfigError) in
            guard let factor = Double(value), factor.isFinite, factor >= 1, factor <= 10 else {
                throw ConfigError("RUNQUEUE_BACKOFF_FACTOR must be a number in 1...10, got \"\(value)\"")
            }
            let b = config.queue.backoff
            config.queue.backoff = NackBackoff(factor: factor, minMs: b.minMs, maxMs: b.maxMs, maxAttempts: b.maxAttempts)
        },
        Key(env: "RUNQUEUE_FAIR_ENV_WINDOW", flag: "--fair-env-window") { config, value throws(ConfigError) in
            config.queue.fairEnvironmentWindow = try integer(value, key: "RUNQUEUE_FAIR_ENV_WINDOW", in: 1...10_000)
        },
        Key(env: "RUNQUEUE_RUN_RETENTION", flag: "--run-retention") { config, value throws(ConfigError) in
            do {
                guard let ms = try TTLParser.milliseconds(value, field: "RUNQUEUE_RUN_RETENTION") else {
                    throw ConfigError("RUNQUEUE_RUN_RETENTION must be a positive duration such as 7d")
                }
                config.runRetentionMs = ms
            } catch let error as TTLError {
                throw ConfigError(error.message)
            } catch {
                throw ConfigError("RUNQUEUE_RUN_RETENTION must be a positive duration such as 7d")
            }
        },
        Key(env: "RUNQUEUE_RECONCILE_INTERVAL_MS", flag: "--reconcile-interval-ms") { config, value throws(ConfigError) in
            config.reconcileIntervalMs = UInt64(try integer(value, key: "RUNQUEUE_RECONCILE_INTERVAL_MS", in: 100...3_600_000))
        },
        Key(env: "RUNQUEUE_HOUSEKEEPING_INTERVAL_MS", flag: "--housekeeping-interval-ms") { config, value throws(ConfigError) in
            config.housekeepingIntervalMs = UInt64(try integer(value, key: "RUNQUEUE_HOUSEKEEPING_INTERVAL_MS", in: 50...60_000))
        },
        Key(env: "RUNQUEUE_DEQUEUED_WRITE_LAG_MS", flag: "--dequeued-write-lag-ms") { config, value throws(ConfigError) in
            config.dequeuedWriteLagMs = UInt64(try integer(value, key: "RUNQUEUE_DEQUEUED_WRITE_LAG_MS", in: 0...600_000))
        },
        Key(env: "RUNQUEUE_REBUILD_HOLD_MS", flag: "--rebuild-hold-ms") { config, value throws(ConfigError) in
            config.rebuildHoldMs = UInt64(try integer(value, key: "RUNQUEUE_REBUILD_HOLD_MS", in: 0...600_000))
        },
        Key(env: "RUN_ENGINE_TTL_SYSTEM_DISABLED", flag: "--ttl-system-disabled") { config, value throws(ConfigError) in
            config.ttlSystemDisabled = try boolean(value, key: "RUN_ENGINE_TTL_SYSTEM_DISABLED")
        },
        Key(env: "RUNQUEUE_BENCHMARK_DISCARD_RECORDS", flag: "--benchmark-discard-records") { config, value throws(ConfigError) in
            if value == "applier" {
                config.benchmarkDiscardApplier = true
            } else {
                config.benchmarkDiscardRecords = try boolean(value, key: "RUNQUEUE_BENCHMARK_DISCARD_RECORDS")
            }
        },
        Key(env: "RUNQUEUE_BENCHMARK_REBUILD", flag: "--benchmark-rebuild") { config, value throws(ConfigError) in
            guard value == "per-shard" else { throw ConfigError("RUNQUEUE_BENCHMARK_REBUILD must be per-shard, got \"\(value)\"") }
            config.benchmarkPerShardRebuild = true
        },
        Key(env: "RUN_ENGINE_TTL_SYSTEM_POLL_INTERVAL_MS", flag: "--ttl-poll-interval-ms") { config, value throws(ConfigError) in
            config.ttlPollIntervalMs = UInt64(try integer(value, key: "RUN_ENGINE_TTL_SYSTEM_POLL_INTERVAL_MS", in: 10...3_600_000))
        },
        Key(env: "RUN_ENGINE_TTL_SYSTEM_BATCH_SIZE", flag: "--ttl-batch-size") { config, value throws(ConfigError) in
            config.ttlBatchSize = try integer(value, key: "RUN_ENGINE_TTL_SYSTEM_BATCH_SIZE", in: 1...100_000)
        },
        Key(env: "RUN_ENGINE_TTL_CONSUMERS_DISABLED", flag: "--ttl-consumers-disabled") { config, value throws(ConfigError) in
            config.ttlConsumersDisabled = try boolean(value, key: "RUN_ENGINE_TTL_CONSUMERS_DISABLED")
        },
        Key(env: "RUN_ENGINE_TTL_SYSTEM_SHARD_COUNT", flag: "--ttl-shard-count") { config, value throws(ConfigError) in
            config.ttlShardCount = try integer(value, key: "RUN_ENGINE_TTL_SYSTEM_SHARD_COUNT", in: ShardMap.configurableShardCounts)
        },
        Key(env: "RUNQUEUE_EVENT_RETENTION", flag: "--event-retention") { config, value throws(ConfigError) in
            do {
                guard let ms = try TTLParser.milliseconds(value, field: "RUNQUEUE_EVENT_RETENTION") else {
                    throw ConfigError("RUNQUEUE_EVENT_RETENTION must be a positive duration such as 7d")
                }
                config.expiryEventRetentionMs = ms
            } catch let error as TTLError {
                throw ConfigError(error.message)
            } catch {
                throw ConfigError("RUNQUEUE_EVENT_RETENTION must be a positive duration such as 7d")
            }
        },
    ]

    /// Builds the configuration from `environment`, then `arguments` (flags
    /// without the program name). Unknown flags and invalid values throw.
    public static func load(environment: [String: String], arguments: [String]) throws(ConfigError) -> ServerConfig {
        var config = ServerConfig()
        for key in keys {
            if let value = environment[key.env] { try key.apply(&config, value) }
        }
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name: String
            let value: String
            if let eq = argument.firstIndex(of: "=") {
                name = String(argument[..<eq])
                value = String(argument[argument.index(after: eq)...])
            } else {
                name = argument
                guard index + 1 < arguments.count else { throw ConfigError("\(argument) needs a value") }
                index += 1
                value = arguments[index]
            }
            guard let key = keys.first(where: { $0.flag == name }) else {
                throw ConfigError("unknown option \(name); options: \(keys.map(\.flag).joined(separator: " "))")
            }
            try key.apply(&config, value)
            index += 1
        }
        if let ttlShards = config.ttlShardCount, ttlShards != config.shardCount {
            throw ConfigError("RUN_ENGINE_TTL_SYSTEM_SHARD_COUNT is \(ttlShards) but RUN_ENGINE_RUN_QUEUE_SHARD_COUNT is \(config.shardCount); "
                              + "the TTL index lives in the queue's shard, so they must be equal (or leave RUN_ENGINE_TTL_SYSTEM_SHARD_COUNT unset)")
        }
        return config
    }

    private static func boolean(_ value: String, key: String) throws(ConfigError) -> Bool {
        switch value.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off", "": return false
        default: throw ConfigError("\(key) must be true or false (1/0), got \"\(value)\"")
        }
    }

    private static func integer(_ value: String, key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let number = Int(value), range.contains(number) else {
            throw ConfigError("\(key) must be an integer in \(range.lowerBound)...\(range.upperBound), got \"\(value)\"")
        }
        return number
    }

    /// A usage text listing every option.
    public static var usage: String {
        "usage: runqueued [" + keys.map { "\($0.flag) VALUE" }.joined(separator: "] [") + "]\n"
            + "Every option can also be set by its environment variable: "
            + keys.map(\.env).joined(separator: ", ") + ". See README.md for defaults."
    }
}
