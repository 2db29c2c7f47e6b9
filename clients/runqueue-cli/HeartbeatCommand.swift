import ArgumentParser
import RunQueueClient

struct HeartbeatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heartbeat",
        abstract: "Extend the lease of a run in flight.",
        discussion: """
            Fails with FAILED_PRECONDITION (exit 1) when the run is not in flight or \
            the --attempt fence does not match.

            Example:
              runqueue heartbeat --run-id run_1 --environment-id env_1 --lease-ms 60000
              lease_expires_at=2025-01-01T12:01:00.000Z run_id=run_1
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var run: RunReference
    @OptionGroup var fence: FenceOption

    @Option(help: "New lease length in ms from now (0 = the server's default, else 1000...86400000).")
    var leaseMs: UInt32 = 0

    func run() async throws {
        try await global.withClient { client in
            let until = try await client.heartbeat(runID: run.runID, environmentID: run.environmentID,
                                                   leaseMs: leaseMs, attempt: fence.attempt)
            if global.json {
                Output.json(.object([("run_id", .string(run.runID)), ("lease_expires_at_ms", .int(until))]))
            } else {
                Output.line(Output.fields([("lease_expires_at", Output.time(until)), ("run_id", run.runID)]))
            }
        }
    }
}
