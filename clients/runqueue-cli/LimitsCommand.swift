import CommandLineSupport
import ArgumentParser
import RunQueueClient
import RunQueueCore

struct LimitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limits",
        abstract: "Set or clear the concurrency limit of an environment or a queue.",
        discussion: """
            Examples:
              runqueue limits set --environment-id env_1 --queue emails --limit 5
              runqueue limits set --environment-id env_1 --limit 50 --burst-factor 2
              runqueue limits clear --environment-id env_1 --queue emails
            """,
        subcommands: [Set.self, Clear.self]
    )

    /// Which limit: the environment's, or one queue's.
    struct Target: ParsableArguments {
        @Option(help: "The environment id.")
        var environmentID: String

        @Option(help: "A queue of the environment (default: the environment itself).")
        var queue = ""
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Cap how many runs of an environment or queue may be in flight.",
            discussion: """
                Example:
                  runqueue limits set --environment-id env_1 --queue emails --limit 5
                  environment_id=env_1 queue=emails limit=5
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: Target

        @Option(help: "Runs in flight at most.")
        var limit: UInt32

        @Option(help: "Environment only: the cap is floor(limit x burst factor); 0 = unchanged.")
        var burstFactor: Double = 0

        func validate() throws {
            if burstFactor != 0, !target.queue.isEmpty {
                throw ValidationError("--burst-factor applies to an environment limit only (leave out --queue)")
            }
        }

        func run() async throws {
            try await global.withClient { client in
                try await client.setConcurrencyLimit(environmentID: target.environmentID, queue: target.queue,
                                                     .limit(limit), burstFactor: burstFactor)
                LimitsCommand.report(global, target, limit: limit, burstFactor: burstFactor)
            }
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "clear",
            abstract: "Remove a queue's limit, or reset an environment's limit to the defaults.",
            discussion: """
                Example:
                  runqueue limits clear --environment-id env_1 --queue emails
                  environment_id=env_1 queue=emails limit=none
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: Target

        func run() async throws {
            try await global.withClient { client in
                try await client.setConcurrencyLimit(environmentID: target.environmentID, queue: target.queue, .clear)
                LimitsCommand.report(global, target, limit: nil, burstFactor: 0)
            }
        }
    }

    static func report(_ global: GlobalOptions, _ target: Target, limit: UInt32?, burstFactor: Double) {
        if global.json {
            var members: [(String, OrderedJSON)] = [
                ("environment_id", .string(target.environmentID)), ("queue", .string(target.queue)),
                ("limit", limit.map { .uint(UInt64($0)) } ?? .null),
            ]
            if burstFactor != 0 { members.append(("burst_factor", .double(burstFactor))) }
            Output.json(.object(members))
        } else {
            var pairs = [("environment_id", target.environmentID)]
            if !target.queue.isEmpty { pairs.append(("queue", target.queue)) }
            pairs.append(("limit", limit.map(String.init) ?? (target.queue.isEmpty ? "default" : "none")))
            if burstFactor != 0 { pairs.append(("burst_factor", String(burstFactor))) }
            Output.line(Output.fields(pairs))
        }
    }
}
