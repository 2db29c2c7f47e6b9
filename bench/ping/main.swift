// runqueue-bench-ping: Ping round trips per second on one connection with 1
// and with 64 calls in flight, against runqueued (a separate process, release
// build) and, as the baseline measured in the same run, a raw frame echo
// server on the same event-loop library (no protobuf decode, no dispatch) in
// another process. Prints one line per figure and the ratio.
//
// usage: runqueue-bench-ping [--seconds N] [--runqueued PATH]
//        runqueue-bench-ping --echo-server PORT   (internal: the baseline server)
import BenchSupport
import Foundation
import RunQueueClient
import RunQueueWire
import UVLoop

func echoServer(port: UInt16) throws -> Never {
    let loop = try EventLoop(name: "echo")
    loop.execute {
        do {
            _ = try TCPListener(loop: loop, address: SocketAddress(host: "127.0.0.1", port: port)) { conn in
                var decoder = FrameDecoder(maxFrameBytes: 1 << 20)
                conn.onRead = { bytes in
                    conn.cork()
                    try? decoder.feed(bytes) { body in
                        var frame: [UInt8] = []
                        FrameEncoder.append(body: Array(body), to: &frame)
                        conn.write(frame)
                    }
                    conn.uncork()
                }
                conn.onReadEnd = { _ in conn.close() }
                conn.startReading()
            }
        } catch {
            FileHandle.standardError.write(Data("echo server: \(error)\n".utf8))
            exit(1)
        }
    }
    while true { sleep(1000) }
}

func launch(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    try spawn(process)
    return process
}

/// A connection once something listens on `port` (the echo server speaks no
/// runqueue methods, so this does not wait for runqueued's stores).
func connectWhenListening(port: UInt16) async throws -> RunQueueConnection {
    for _ in 0..<200 {
        if let connection = try? await RunQueueConnection.connect(to: SocketAddress(host: "127.0.0.1", port: port)) {
            return connection
        }
        try await Task.sleep(for: .milliseconds(25))
    }
    throw RunQueueError(.unavailable, "server on port \(port) did not start")
}

/// Calls per second with `window` pings in flight for `seconds`.
func measure(_ connection: RunQueueConnection, window: Int, seconds: Double) async throws -> Double {
    let payload = [UInt8](repeating: 0x61, count: 16)
    // Warm up.
    for _ in 0..<200 { _ = try await connection.ping(payload) }
    let start = ContinuousClock.now
    let end = start + .milliseconds(Int(seconds * 1000))
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
        for _ in 0..<window {
            group.addTask {
                var count = 0
                while ContinuousClock.now < end {
                    _ = try await connection.ping(payload)
                    count += 1
                }
                return count
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = ContinuousClock.now - start
    return Double(total) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

func main() async throws {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--echo-server"), i + 1 < args.count, let port = UInt16(args[i + 1]) {
        try echoServer(port: port)
    }
    var seconds = 3.0
    if let i = args.firstIndex(of: "--seconds"), i + 1 < args.count, let s = Double(args[i + 1]) { seconds = s }
    let selfPath = URL(fileURLWithPath: args[0]).resolvingSymlinksInPath()
    var runqueued = selfPath.deletingLastPathComponent().appendingPathComponent("runqueued").path
    if let i = args.firstIndex(of: "--runqueued"), i + 1 < args.count { runqueued = args[i + 1] }

    let echoPort = freePort()
    let echo = try launch(selfPath.path, ["--echo-server", "\(echoPort)"])
    let serverPort = freePort()
    let server = try launch(runqueued, [], environment: ["RUNQUEUE_LISTEN": "127.0.0.1:\(serverPort)", "RUNQUEUE_LOG_LEVEL": "error"])
    defer {
        stop(server)
        stop(echo)
    }
    let echoConnection = try await connectWhenListening(port: echoPort)
    let serverConnection = try await connectWhenListening(port: serverPort)
    print("ping round trips per second, one connection, \(seconds) s per figure, 16-byte payload")
    for window in [1, 64] {
        let baseline = try await measure(echoConnection, window: window, seconds: seconds)
        let ours = try await measure(serverConnection, window: window, seconds: seconds)
        print(String(format: "window %3d: runqueued %9.0f calls/s | raw frame echo baseline %9.0f calls/s | ratio %.2f",
                     window, ours, baseline, ours / baseline))
    }
}

try await main()
