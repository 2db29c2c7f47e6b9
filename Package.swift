// swift-tools-version:6.0
// Swift 6 language mode for every target. C libraries come from Debian's -dev
// packages through system-library targets; see docs/architecture.md.
import PackageDescription

let deque = Target.Dependency.product(name: "DequeModule", package: "swift-collections")

let package = Package(
    name: "runqueue",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "runqueued", targets: ["runqueued"]),
        .executable(name: "runqueue", targets: ["runqueue"]),
        .executable(name: "runqueue-load", targets: ["runqueue-load"]),
        .library(name: "RunQueueClient", targets: ["RunQueueClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // System libraries: module.modulemap + shim.h, one Swift importer each.
        .systemLibrary(name: "CLibUV", pkgConfig: "libuv", providers: [.apt(["libuv1-dev"])]),
        // No pkgConfig: hiredis.pc carries -D_FILE_OFFSET_BITS=64, which SwiftPM rejects.
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CProtobufC", pkgConfig: "libprotobuf-c", providers: [.apt(["libprotobuf-c-dev"])]),
        // protoc-c output of proto/runqueue/v1/*.proto; regenerate with scripts/gen-proto.
        .target(name: "CRunQueueProto", dependencies: ["CProtobufC"]),
        // hiredis <-> libuv adapter with poll errors forwarded (the stock one swallows them).
        .target(name: "CRedisUV", dependencies: ["CHiredis", "CLibUV"]),

        .target(name: "UVLoop", dependencies: ["CLibUV"]),
        .target(name: "RedisDriver", dependencies: ["CHiredis", "CRedisUV", "CLibUV", "UVLoop", "RunQueueCore", deque]),
        .target(name: "PostgresDriver", dependencies: ["CLibPQ", "CLibUV", "UVLoop", "RunQueueCore", deque]),
        .target(name: "RunQueueCore"),
        // The wire: protobuf-c messages and frames (with the drivers, the only Swift that touches C).
        .target(name: "RunQueueWire", dependencies: ["CRunQueueProto", "CProtobufC", "RunQueueCore"]),
        // The stored formats of a run in Redis (V2, V3, V4), pure Swift.
        .target(name: "RunQueueStoredFormat", dependencies: ["RunQueueCore"]),
        .target(name: "RunQueueExpiry", dependencies: ["RunQueueCore"]),
        .target(
            name: "RunQueueStorage",
            dependencies: ["RedisDriver", "PostgresDriver", "RunQueueCore", "RunQueueStoredFormat", "UVLoop"],
            resources: [.copy("Lua"), .copy("Migrations")]
        ),
        // The queue service without its transport: stores, queue methods, outbox applier, maintenance, expiry.
        .target(
            name: "RunQueueEngine",
            dependencies: [
                "UVLoop", "RedisDriver", "PostgresDriver", "RunQueueCore", "RunQueueStorage", "RunQueueExpiry", deque,
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The transport: listener, connections, call contexts, method router, runqueued's settings.
        .target(
            name: "RunQueueServer",
            dependencies: [
                "UVLoop", "RunQueueCore", "RunQueueWire", "RunQueueEngine", "RunQueueStorage", "RunQueueExpiry",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "RunQueueClient", dependencies: ["UVLoop", "RunQueueCore", "RunQueueWire", deque]),
        .executableTarget(
            name: "runqueued",
            dependencies: ["RunQueueServer", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "runqueue",
            dependencies: [
                "CommandLineSupport", "RunQueueClient", "RunQueueCore", "RunQueueEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "clients/runqueue-cli"
        ),
        .executableTarget(
            name: "runqueue-load",
            dependencies: [
                "CommandLineSupport", "RunQueueClient", "RunQueueCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "clients/runqueue-load"
        ),
        .target(
            name: "CommandLineSupport",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "clients/support"
        ),
        .executableTarget(
            name: "runqueue-bench-ping",
            dependencies: ["BenchSupport", "RunQueueClient", "RunQueueWire", "UVLoop"],
            path: "bench/ping"
        ),
        .executableTarget(
            name: "runqueue-bench-memory",
            dependencies: ["BenchSupport", "RunQueueStorage", "RedisDriver", "RunQueueCore", "RunQueueStoredFormat", "UVLoop"],
            path: "bench/memory"
        ),
        .executableTarget(
            name: "runqueue-bench-cycle",
            dependencies: ["BenchSupport", "RunQueueClient", "RunQueueCore", "PostgresDriver", "UVLoop"],
            path: "bench/cycle"
        ),
        .executableTarget(
            name: "runqueue-bench-expiry",
            dependencies: ["BenchSupport", "RunQueueClient", "RunQueueCore", "RedisDriver", "UVLoop"],
            path: "bench/expiry"
        ),
        .executableTarget(
            name: "runqueue-bench-churn",
            dependencies: ["BenchSupport", "RunQueueClient", "RunQueueCore", "RunQueueWire", "TestSupport", "UVLoop"],
            path: "bench/churn"
        ),
        .executableTarget(
            name: "runqueue-bench-rebuild",
            dependencies: ["BenchSupport", "RunQueueClient", "RunQueueCore"],
            path: "bench/rebuild"
        ),
        .target(
            name: "BenchSupport",
            dependencies: ["RunQueueClient", "RunQueueCore", "UVLoop", .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "bench/support"
        ),
        .executableTarget(
            name: "runqueue-bench-scale",
            dependencies: ["BenchSupport", "RunQueueClient", "RunQueueCore", "UVLoop"],
            path: "bench/scale"
        ),

        .target(
            name: "TestSupport",
            dependencies: ["RunQueueServer", "RunQueueClient", "RunQueueWire", "RunQueueCore", "UVLoop", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "UVLoopTests", dependencies: ["UVLoop", "TestSupport"]),
        .testTarget(name: "RedisDriverTests", dependencies: ["RedisDriver", "UVLoop", "TestSupport"]),
        .testTarget(name: "PostgresDriverTests", dependencies: ["PostgresDriver", "UVLoop", "TestSupport", deque]),
        .testTarget(name: "RunQueueWireTests", dependencies: ["RunQueueWire", "RunQueueCore", "TestSupport"]),
        .testTarget(name: "RunQueueStoredFormatTests", dependencies: ["RunQueueStoredFormat", "RunQueueCore"]),
        .testTarget(name: "RunQueueCoreTests", dependencies: ["RunQueueCore"]),
        .testTarget(name: "RunQueueExpiryTests", dependencies: ["RunQueueExpiry", "RunQueueCore"]),
        .testTarget(name: "RunQueueEngineTests", dependencies: ["RunQueueEngine"]),
        .testTarget(
            name: "RunQueueStorageTests",
            dependencies: ["RunQueueStorage", "RedisDriver", "RunQueueCore", "RunQueueStoredFormat", "UVLoop", "TestSupport"]
        ),
        .testTarget(
            name: "RunQueueClientTests",
            dependencies: ["RunQueueClient", "RunQueueCore", "RunQueueWire", "TestSupport"]
        ),
        .testTarget(name: "RunQueueToolsTests", dependencies: ["RunQueueCore", "TestSupport"]),
        .testTarget(
            name: "RunQueueServerTests",
            dependencies: ["RunQueueServer", "RunQueueEngine", "RunQueueStorage", "PostgresDriver", "RunQueueClient", "RunQueueWire", "RunQueueCore", "UVLoop", "TestSupport"]
        ),
    ]
)
