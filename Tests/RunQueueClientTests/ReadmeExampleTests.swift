import RunQueueClient
import RunQueueCore
import Testing
import TestSupport

/// The Swift example of README.md "Using the clients", kept compiling and working.
@Suite(.tags(.integration), .needsServices) struct ReadmeExampleTests {
    @Test func theReadmeProducerAndWorkerRun() async throws {
        let test = try await TestServer.ready()
        let n = Names()
        let handled = HandledRuns()
        func handle(_ run: RunMessage) async -> Bool {
            await handled.add(run.runID)
        }

        // --- README: producer
        let client = try RunQueueClient(server: test.hostPort)
        let answer = try await client.enqueue(RunDescriptor(
            runID: n("run_1"), orgID: "org_1", projectID: "proj_1", environmentID: n("env_1"),
            environmentType: .production, queue: "task/email", taskIdentifier: "email",
            workerQueue: n("my-worker-queue"), ttl: "10m"))
        #expect(answer.created && answer.expiresAtMs > 0)
        _ = try await client.enqueue(RunDescriptor(
            runID: n("run_2"), orgID: "org_1", projectID: "proj_1", environmentID: n("env_1"),
            environmentType: .production, queue: "task/email", taskIdentifier: "email",
            workerQueue: n("my-worker-queue")))

        // --- README: worker (ends once both runs were acked)
        let worker = Task {
            while !Task.isCancelled {
                do {
                    for run in try await client.dequeue(workerQueue: n("my-worker-queue"), maxRuns: 50,
                                                        waitMs: 5000, leaseMs: 60_000) {
                        if await handle(run) {
                            _ = try await client.ack(run)
                        } else {
                            _ = try await client.nack(run, retryAtMs: nowMs())
                        }
                    }
                } catch {
                    print("runqueue:", error)
                    try? await Task.sleep(for: .seconds(1))
                }
                if await handled.acked.count == 2 { break }
            }
        }
        await worker.value
        #expect(await handled.acked == [n("run_1"), n("run_2")])
        #expect(await handled.failedOnce == [n("run_2")])
        #expect(try await client.queueStats(environmentID: n("env_1")).inFlight == 0)
        await client.close()
        #expect(await test.server.stop() == 0)
    }
}

/// The example's `handle`: fails run_2's first attempt, succeeds otherwise.
actor HandledRuns {
    var acked: Set<String> = []
    var failedOnce: Set<String> = []

    func add(_ runID: String) -> Bool {
        if runID.hasSuffix("run_2"), !failedOnce.contains(runID) {
            failedOnce.insert(runID)
            return false
        }
        acked.insert(runID)
        return true
    }
}
