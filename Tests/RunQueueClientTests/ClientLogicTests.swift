import RunQueueCore
import RunQueueWire
import Testing
import TestSupport
@testable import RunQueueClient

/// The client's pure pieces: batch sizing and reconnect backoff.
@Suite struct ClientLogicTests {
    static func run(_ i: Int, padding: Int = 0) -> RunDescriptor {
        RunDescriptor(runID: "run_\(i)" + String(repeating: "x", count: padding), orgID: "org", projectID: "proj",
                      environmentID: "env", environmentType: .production, queue: "queue/a", concurrencyKey: "k\(i % 7)",
                      taskIdentifier: "task", workerQueue: "wq", timestampMs: -1, priorityMs: Int64.min, ttl: "10m")
    }

    static func frameBytes(_ runs: ArraySlice<RunDescriptor>) -> Int {
        WireCodec.encodeRequest(Request(callID: UInt64.max, call: .enqueueBatch(EnqueueBatchRequest(runs: Array(runs))))).count
    }

    @Test func batchChunksNeverExceedTheFrameLimitOrAThousandRuns() {
        let runs = (0..<3000).map { Self.run($0, padding: $0 % 100) }
        for limit in [1024, 4096, 65_536, 1 << 20] {
            let plan = EnqueueBatchPlan(runs: runs, maxFrameBytes: limit)
            #expect(plan.oversized.isEmpty)
            #expect(plan.chunks.first?.lowerBound == 0 && plan.chunks.last?.upperBound == runs.count)
            for (a, b) in zip(plan.chunks, plan.chunks.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            for chunk in plan.chunks {
                #expect(chunk.count <= 1000 && !chunk.isEmpty)
                #expect(Self.frameBytes(runs[chunk]) <= limit, "chunk \(chunk) over \(limit)")
            }
        }
        #expect(EnqueueBatchPlan(runs: runs, maxFrameBytes: 64 << 20).chunks == [0..<1000, 1000..<2000, 2000..<3000])
    }

    @Test func chunksFillTheFrameToWithinAFewPercent() {
        let runs = (0..<3000).map { Self.run($0) }
        let plan = EnqueueBatchPlan(runs: runs, maxFrameBytes: 16_384)
        for chunk in plan.chunks.dropLast() {
            #expect(Self.frameBytes(runs[chunk]) > 16_384 * 8 / 10)
        }
    }

    @Test func aRunThatCannotFitAnyFrameIsLeftOutAlone() {
        var runs = (0..<5).map { Self.run($0) }
        runs[2].runID = String(repeating: "r", count: 2000)
        let plan = EnqueueBatchPlan(runs: runs, maxFrameBytes: 1024)
        #expect(plan.oversized == [2])
        #expect(plan.chunks == [0..<2, 3..<5])
    }

    @Test func reconnectBackoffDoublesWithJitterUpToItsMaximum() {
        let policy = ReconnectPolicy(initialMs: 50, maxMs: 1000)
        #expect(policy.delayMs(failures: 0, random: 0.9) == 0)
        #expect(policy.delayMs(failures: 1, random: 0) == 25)
        #expect(policy.delayMs(failures: 1, random: 0.999) == 49)
        #expect(policy.delayMs(failures: 3, random: 0) == 100)
        #expect(policy.delayMs(failures: 10, random: 0) == 500)
        #expect(policy.delayMs(failures: 10_000, random: 0.999_999) < 1000)
        #expect(policy.delayMs(failures: 2, random: .nan) == 50)
        #expect(policy.delayMs(failures: 2, random: 7) < 100)
    }

    @Test func durationsRoundUpToWholeMilliseconds() {
        #expect(Duration.milliseconds(1500).wholeMilliseconds == 1500)
        #expect(Duration.nanoseconds(1).wholeMilliseconds == 1)
        #expect(Duration.seconds(2).wholeMilliseconds == 2000)
        #expect(Duration.zero.wholeMilliseconds == 0)
        #expect(Duration.milliseconds(-5).wholeMilliseconds == 0)
    }
}
