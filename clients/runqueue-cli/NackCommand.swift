import ArgumentParser
import RunQueueClient

struct NackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nack",
        abstract: "Report a failed attempt: the run is retried later, or dead-lettered.",
        discussion: """
            Without --retry-at-ms the run waits the server's backoff. The failure that \
            reaches the server's max attempts dead-letters the run (see `runqueue redrive`).

            Example:
              runqueue nack --run-id run_1 --environment-id env_1 --attempt 0
              requeued=true dead_lettered=false attempt=1 run_id=run_1
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var run: RunReference
    @OptionGroup var fence: FenceOption

    @Option(help: "Due again at this Unix time in ms (0 = the server's backoff).")
    var retryAtMs: Int64 = 0

    @Flag(help: "Do not count this failure (the attempt stays).")
    var keepAttempt = false

    func run() async throws {
        try await global.withClient { client in
            let answer = try await client.nack(runID: run.runID, environmentID: run.environmentID, retryAtMs: retryAtMs,
                                               keepAttempt: keepAttempt, attempt: fence.attempt)
            if global.json {
                Output.json(.object([
                    ("run_id", .string(run.runID)), ("requeued", .bool(answer.requeued)),
                    ("attempt", .uint(UInt64(answer.attempt))), ("dead_lettered", .bool(answer.deadLettered)),
                ]))
            } else {
                Output.line(Output.fields([
                    ("requeued", String(answer.requeued)), ("dead_lettered", String(answer.deadLettered)),
                    ("attempt", String(answer.attempt)), ("run_id", run.runID),
                ]))
            }
        }
    }
}
