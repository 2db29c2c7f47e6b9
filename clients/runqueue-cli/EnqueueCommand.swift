import CommandLineSupport
import ArgumentParser
import Foundation
import RunQueueClient
import RunQueueCore

struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue one run from flags, or many from a JSON-lines file.",
        discussion: """
            One run: every RunDescriptor field is a flag. --run-id, --org-id, --project-id, \
            --environment-id, --environment-type, --queue and --worker-queue are required.

            Many runs: --file FILE.jsonl (or - for stdin), one RunDescriptor per line as a JSON \
            object with the proto field names (run_id, org_id, project_id, environment_id, \
            environment_type, queue, concurrency_key, task_identifier, worker_queue, \
            timestamp_ms, priority_ms, ttl; camelCase works too). Flags given with --file \
            fill the fields a line leaves out. The whole file is checked before anything is \
            sent; runs go out in batches. Each run prints one result; a run the server refuses \
            is reported on stderr and the exit code is 1.

            Examples:
              runqueue enqueue --run-id run_1 --org-id org_1 --project-id proj_1 \\
                --environment-id env_1 --environment-type production --queue emails \\
                --worker-queue main --task-identifier send-email --ttl 10m
              created=true expires_at=2025-01-01T12:10:00.000Z run_id=run_1

              runqueue enqueue --file runs.jsonl --org-id org_1 --project-id proj_1 \\
                --environment-id env_1 --environment-type production --worker-queue main --json
              where each line of runs.jsonl names the rest, e.g.
              {"run_id":"run_2","queue":"emails","task_identifier":"send-email","ttl":"1h"}
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("JSON-lines file of runs (- = stdin).", valueName: "file"))
    var file: String?

    @Option(help: "Runs per batch when enqueueing from --file (1...1000).")
    var batchSize = 1000

    @Option(help: "The run id (unique per run; enqueueing it again changes nothing).")
    var runID: String?

    @Option(help: "Organization id.")
    var orgID: String?

    @Option(help: "Project id.")
    var projectID: String?

    @Option(help: "Environment id.")
    var environmentID: String?

    @Option(help: ArgumentHelp("development, staging, preview or production.", valueName: "type"))
    var environmentType: EnvironmentTypeArgument?

    @Option(help: "Queue name.")
    var queue: String?

    @Option(help: "Concurrency key within the queue (default: none).")
    var concurrencyKey: String?

    @Option(help: "Task identifier.")
    var taskIdentifier: String?

    @Option(help: "Worker queue the run is dequeued from.")
    var workerQueue: String?

    @Option(help: "Ordering time, Unix ms (default: now).")
    var timestampMs: Int64?

    @Option(help: "Priority in ms, subtracted from the ordering time.")
    var priorityMs: Int64?

    @Option(help: ArgumentHelp("Time to live: 30s, 10m, 2h, 1d ... (default: none). The run expires if not dequeued by then.",
                               valueName: "duration"))
    var ttl: String?

    /// The flags as a descriptor (missing fields empty).
    var flagDescriptor: RunDescriptor {
        RunDescriptor(runID: runID ?? "", orgID: orgID ?? "", projectID: projectID ?? "", environmentID: environmentID ?? "",
                      environmentType: environmentType?.value ?? .unspecified, queue: queue ?? "",
                      concurrencyKey: concurrencyKey ?? "", taskIdentifier: taskIdentifier ?? "",
                      workerQueue: workerQueue ?? "", timestampMs: timestampMs ?? 0, priorityMs: priorityMs ?? 0, ttl: ttl ?? "")
    }

    func validate() throws {
        guard (1...1000).contains(batchSize) else { throw ValidationError("--batch-size must be in 1...1000") }
        guard file == nil else { return }
        let required: [(String, Bool)] = [
            ("--run-id", runID != nil), ("--org-id", orgID != nil), ("--project-id", projectID != nil),
            ("--environment-id", environmentID != nil), ("--environment-type", environmentType != nil),
            ("--queue", queue != nil), ("--worker-queue", workerQueue != nil),
        ]
        let missing = required.filter { !$0.1 }.map(\.0)
        if !missing.isEmpty {
            throw ValidationError("missing \(missing.joined(separator: ", ")) (or give --file FILE.jsonl)")
        }
    }

    func run() async throws {
        if let file {
            let runs: [RunDescriptor]
            do {
                runs = try DescriptorLines.read(file, defaults: flagDescriptor)
            } catch {
                throw ValidationError(error.message)
            }
            try await enqueueMany(runs)
        } else {
            try await global.withClient { client in
                let answer = try await client.enqueue(flagDescriptor)
                report(flagDescriptor.runID, EnqueueResult(status: .ok, created: answer.created, expiresAtMs: answer.expiresAtMs))
            }
        }
    }

    private func enqueueMany(_ runs: [RunDescriptor]) async throws {
        var failed = 0
        var created = 0
        try await global.withClient { client in
            for start in stride(from: 0, to: runs.count, by: batchSize) {
                let batch = Array(runs[start..<min(start + batchSize, runs.count)])
                let results = try await client.enqueueBatch(batch)
                for (run, result) in zip(batch, results) {
                    report(run.runID, result)
                    if !result.status.isOK {
                        failed += 1
                        Output.error("error: run_id \(run.runID): \(result.status.code.name): \(result.status.message)")
                    } else if result.created {
                        created += 1
                    }
                }
            }
        }
        if !global.json {
            let existed = runs.count - failed - created
            Output.error("\(runs.count) runs: \(created) created, \(existed) already existed, \(failed) failed")
        }
        if failed > 0 { throw ExitCode(ExitStatus.callFailed) }
    }

    private func report(_ runID: String, _ result: EnqueueResult) {
        if global.json {
            var members: [(String, OrderedJSON)] = [("run_id", .string(runID)), ("status", .string(result.status.code.name))]
            if !result.status.isOK { members.append(("message", .string(result.status.message))) }
            members += [("created", .bool(result.created)), ("expires_at_ms", .int(result.expiresAtMs))]
            Output.json(.object(members))
        } else if result.status.isOK {
            Output.line(Output.fields([
                ("created", String(result.created)), ("expires_at", Output.time(result.expiresAtMs)), ("run_id", runID),
            ]))
        }
    }
}
