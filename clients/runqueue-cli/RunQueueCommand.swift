import ArgumentParser

/// `runqueue`: one subcommand per protocol method.
struct RunQueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runqueue",
        abstract: "Talk to a runqueued server: enqueue, dequeue, ack, inspect and subscribe.",
        discussion: """
            The server is --server, else $RUNQUEUE_SERVER, else 127.0.0.1:7420. Every command \
            takes --json (one JSON object per result, on stdout) and --timeout.

            Exit codes: 0 success, 1 a call failed (its status and message on stderr), 2 bad usage.

            Examples:
              runqueue ping
              runqueue enqueue --run-id run_1 --org-id org_1 --project-id proj_1 \\
                --environment-id env_1 --environment-type production --queue emails \\
                --worker-queue main --ttl 10m
              runqueue dequeue --worker-queue main --max-runs 10 --wait-ms 5000 --json
            """,
        subcommands: [
            PingCommand.self, EnqueueCommand.self, DequeueCommand.self, AckCommand.self, NackCommand.self,
            HeartbeatCommand.self, ReadCommand.self, GetCommand.self, StatsCommand.self, LimitsCommand.self,
            RedriveCommand.self, SubscribeCommand.self, RepairCommand.self,
        ]
    )
}

/// The process exit codes.
enum ExitStatus {
    static let callFailed: Int32 = 1
    static let badUsage: Int32 = 2
}
