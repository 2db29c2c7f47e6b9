import ArgumentParser
import RunQueueClient

struct PingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Check that the server answers; prints its version and the round trip.",
        discussion: """
            Example:
              runqueue ping --server 127.0.0.1:7420
              pong from 127.0.0.1:7420 server_version="runqueued 0.1.0" rtt_ms=0.21
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Bytes the server echoes back (UTF-8 text).")
    var payload = ""

    func run() async throws {
        try await global.withClient { client in
            try await client.connect()
            let start = ContinuousClock.now
            let echoed = try await client.ping(Array(payload.utf8))
            let elapsed = ContinuousClock.now - start
            let rttMs = Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000
            let rounded = (rttMs * 1000).rounded() / 1000
            let hello = client.serverInfo
            if global.json {
                Output.json(.object([
                    ("server", .string(global.serverAddress)),
                    ("server_version", .string(hello?.serverVersion ?? "")),
                    ("max_frame_bytes", .uint(UInt64(hello?.maxFrameBytes ?? 0))),
                    ("shard_count", .uint(UInt64(hello?.shardCount ?? 0))),
                    ("payload", .string(String(decoding: echoed, as: UTF8.self))),
                    ("rtt_ms", .double(rounded)),
                ]))
            } else {
                Output.line("pong from \(global.serverAddress) " + Output.fields([
                    ("server_version", hello?.serverVersion ?? ""), ("rtt_ms", String(rounded)),
                ]))
            }
        }
    }
}
