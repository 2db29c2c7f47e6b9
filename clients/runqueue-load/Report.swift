import CommandLineSupport
import Foundation

/// What a load run measured; rendered as text, as JSON (--json) or as a chart (--plot).
struct Report {
    let plan: ScenarioPlan
    let prefix: String
    let startedAt: Date
    /// From the first send to the end of the drain, seconds.
    let elapsed: Double
    /// The production phase, seconds.
    let produced: Double
    let stats: [Series: SeriesStats]
    let created: Int
    let notCreated: Int
    let enqueueFailed: Int
    let lateSends: Int
    let dequeued: Int
    let acked: Int
    let ackedFalse: Int
    let expiring: Int
    let events: Int
    let foreignEvents: Int
    let missingEvents: Int
    let subscribersFailed: Int
    let left: Int?
    let cleanedUp: Int?
    /// Cleanup acks that answered false or failed, and the failures by status.
    let cleanupMissed: Int
    let cleanupErrors: [String: Int]
    let interrupted: Bool

    /// The percentiles every series reports, with their JSON keys.
    static let percentiles: [(key: String, percentile: Double)] = [("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)]

    /// Errors of every call, by status name (failed calls and failed runs inside OK batches).
    var errorsByStatus: [String: Int] {
        var out: [String: Int] = [:]
        for (_, s) in stats {
            for (name, n) in s.errors { out[name, default: 0] += n }
            for (name, n) in s.itemErrors { out[name, default: 0] += n }
        }
        return out
    }

    var errorCount: Int { errorsByStatus.values.reduce(0, +) }

    /// The seconds a series' per-second rate is taken over: the production
    /// phase for the producers' calls, the whole run for the others.
    func window(_ series: Series) -> Double {
        max(series == .enqueue || series == .enqueueBatch ? produced : elapsed, 0.001)
    }

    /// The scenario's headline rate: runs acked per second (cycle), else runs enqueued per second.
    var runsPerSecond: Double {
        plan.kind == .cycle ? Double(acked) / max(elapsed, 0.001) : Double(created) / max(produced, 0.001)
    }

    var callsPerSecond: Double {
        plan.series.filter(\.isCall).reduce(0) { $0 + Double(stats[$1]?.ok ?? 0) } / max(elapsed, 0.001)
    }

    /// Set when the scenario did not run in any useful sense (exit 1): no enqueue succeeded.
    var nothingSucceeded: String? {
        let series = plan.enqueueSeries
        guard let s = stats[series], s.ok == 0, !interrupted else { return nil }
        let errors = errorsByStatus.sorted { $0.value > $1.value }.map { "\($0.key) x\($0.value)" }.joined(separator: ", ")
        return "no \(series.name) call succeeded" + (errors.isEmpty ? "" : " (\(errors))")
    }

    // MARK: - JSON

    func json() -> OrderedJSON {
        var config: [(String, OrderedJSON)] = [
            ("connections", .int(plan.connections)),
            ("window", .int(plan.window)),
            ("rate", plan.rate.map { .number($0) } ?? .null),
            ("duration_s", plan.produceFor.map { .number($0.seconds) } ?? .null),
            ("count", plan.count.map { .int($0) } ?? .null),
            ("batch_size", .int(plan.batchSize)),
            ("environments", .int(plan.environments)),
            ("ttl", .string(plan.ttl)),
            ("timeout_s", plan.timeout.map { .number($0.seconds) } ?? .null),
            ("drain_timeout_s", .number(plan.drainTimeout.seconds)),
        ]
        switch plan.kind {
        case .cycle:
            config += [("consumers", .int(plan.consumers)), ("consumer_window", .int(plan.consumerWindow)),
                       ("max_runs", .int(Int(plan.maxRuns))), ("wait_ms", .int(Int(plan.waitMs))),
                       ("concurrency_limit", .int(Int(plan.concurrencyLimit)))]
        case .enqueue:
            config += [("concurrency_limit", .int(Int(plan.concurrencyLimit))), ("cleanup", .bool(plan.cleanup))]
        case .expiry, .subscribe:
            config += [("subscribers", .int(plan.subscribers))]
        }

        var runs: [(String, OrderedJSON)] = [
            ("enqueued", .int(created)),
            ("not_created", .int(notCreated)),
            ("enqueue_failed", .int(enqueueFailed)),
        ]
        switch plan.kind {
        case .cycle:
            runs += [("dequeued", .int(dequeued)), ("acked", .int(acked)), ("acked_false", .int(ackedFalse)),
                     ("left", left.map { .int($0) } ?? .null)]
        case .enqueue:
            runs += [("cleaned_up", cleanedUp.map { .int($0) } ?? .null), ("cleanup_missed", .int(cleanupMissed)),
                     ("cleanup_errors", .object(cleanupErrors.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                     ("left", left.map { .int($0) } ?? .null)]
        case .expiry, .subscribe:
            runs += [("expiring", .int(expiring)), ("events", .int(events)), ("missing_events", .int(missingEvents)),
                     ("foreign_events", .int(foreignEvents)), ("subscribers_failed", .int(subscribersFailed))]
        }

        var throughput: [(String, OrderedJSON)] = [("runs_per_s", .number(runsPerSecond, places: 1)),
                                            ("calls_per_s", .number(callsPerSecond, places: 1))]
        if plan.expiryScenario { throughput.append(("events_per_s", .number(Double(events) / max(elapsed, 0.001), places: 1))) }

        var calls: [(String, OrderedJSON)] = []
        var measures: [(String, OrderedJSON)] = []
        for series in plan.series {
            let s = stats[series] ?? SeriesStats()
            if series.isCall {
                var entry: [(String, OrderedJSON)] = [
                    ("count", .int(s.ok + s.errorCount)),
                    ("ok", .int(s.ok)),
                    ("errors", .object(s.errors.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                    ("per_s", .number(Double(s.ok) / window(series), places: 1)),
                ]
                switch series {
                case .enqueue, .enqueueBatch:
                    entry.append(("runs", .int(s.runs)))
                    if plan.openLoop { entry.append(("late_sends", .int(lateSends))) }
                    if series == .enqueueBatch {
                        entry.append(("item_errors", .object(s.itemErrors.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })))
                    }
                case .dequeue:
                    entry += [("runs", .int(s.runs)), ("empty", .int(s.empty))]
                default:
                    break
                }
                entry.append(("latency_ms", latencyJSON(s)))
                calls.append((series.name, .object(entry)))
            } else {
                measures.append((series.name, .object([
                    ("count", .int(s.ok)),
                    ("negative", .int(s.negative)),
                    ("latency_ms", latencyJSON(s)),
                ])))
            }
        }

        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return .object([
            ("scenario", .string(plan.kind.rawValue)),
            ("mode", .string(plan.modeName)),
            ("server", .string(plan.server)),
            ("prefix", .string(prefix)),
            ("started_at", .string(formatter.string(from: startedAt))),
            ("interrupted", .bool(interrupted)),
            ("config", .object(config)),
            ("elapsed_s", .number(elapsed)),
            ("produce_s", .number(produced)),
            ("throughput", .object(throughput)),
            ("runs", .object(runs)),
            ("error_count", .int(errorCount)),
            ("errors", .object(errorsByStatus.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("calls", .object(calls)),
            ("measures", .object(measures)),
        ])
    }

    private func latencyJSON(_ s: SeriesStats) -> OrderedJSON {
        var fields: [(String, OrderedJSON)] = [("min", .number(s.minMs)), ("mean", .number(s.meanMs))]
        for (key, percentile) in Self.percentiles { fields.append((key, .number(s.percentileMs(percentile)))) }
        fields.append(("max", .number(s.maxMs)))
        return .object(fields)
    }

    // MARK: - Text

    func text() -> String {
        var lines: [String] = []
        let shape = plan.openLoop
            ? "open loop at \(compact(plan.rate ?? 0)) runs/s (at most \(plan.connections) x \(plan.window) calls in flight)"
            : "closed loop, \(plan.connections) connection\(plan.connections == 1 ? "" : "s") x \(plan.window) in flight"
        let batch = plan.batchSize == 1 ? "Enqueue" : "EnqueueBatch of \(plan.batchSize)"
        lines.append("runqueue-load \(plan.kind.rawValue) against \(plan.server): \(shape), \(batch), "
            + "\(plan.environments) environment\(plan.environments == 1 ? "" : "s"), ids prefixed \(prefix)")
        switch plan.kind {
        case .cycle:
            lines.append("consumers: \(plan.consumers) connection\(plan.consumers == 1 ? "" : "s") x \(plan.consumerWindow) Dequeue loops "
                + "(max_runs \(plan.maxRuns), wait_ms \(plan.waitMs)), one Ack per run")
        case .expiry, .subscribe:
            lines.append("\(plan.subscribers) subscriber\(plan.subscribers == 1 ? "" : "s") (SubscribeExpiry, org filter), runs with ttl \(plan.ttl)")
        case .enqueue:
            break
        }
        lines.append(String(format: "produced for %.2f s, finished after %.2f s", produced, elapsed) + (interrupted ? " (interrupted)" : ""))

        switch plan.kind {
        case .cycle:
            lines.append("runs: \(grouped(created)) enqueued, \(grouped(dequeued)) dequeued, \(grouped(acked)) acked"
                + (left.map { ", \(grouped($0)) left in the queues" } ?? "")
                + " -> \(grouped(Int(runsPerSecond.rounded()))) runs/s acked")
        case .enqueue:
            lines.append("runs: \(grouped(created)) enqueued -> \(grouped(Int(runsPerSecond.rounded()))) runs/s"
                + (cleanedUp.map { "; cleanup dequeued and acked \(grouped($0))" } ?? "; left in the queue (--keep)")
                + (left.map { ", \(grouped($0)) left" } ?? ""))
        case .expiry, .subscribe:
            let expected = expiring * plan.subscribers
            lines.append("runs: \(grouped(created)) enqueued (\(grouped(Int(runsPerSecond.rounded()))) runs/s), \(grouped(expiring)) with a deadline; "
                + "events: \(grouped(events)) of \(grouped(expected)) expected received, \(grouped(missingEvents)) missing "
                + "-> \(grouped(Int((Double(events) / max(elapsed, 0.001)).rounded()))) events/s")
        }
        if cleanupMissed > 0 {
            let errors = cleanupErrors.sorted { $0.value > $1.value }.map { "\($0.key) \(grouped($0.value))" }.joined(separator: ", ")
            lines.append("  cleanup: \(grouped(cleanupMissed)) acks answered acked=false or failed" + (errors.isEmpty ? "" : " (\(errors))"))
        }
        if notCreated > 0 { lines.append("  \(grouped(notCreated)) enqueues answered created=false (the run id existed)") }
        if enqueueFailed > 0 { lines.append("  \(grouped(enqueueFailed)) runs were not enqueued (their call or their own status failed)") }
        if lateSends > 0 {
            lines.append("  \(grouped(lateSends)) sends were more than 1 ms behind schedule: all \(plan.connections) x \(plan.window) slots were busy "
                + "(their wait counts in their latency; raise --window or --connections if the client, not the server, is the limit)")
        }
        if ackedFalse > 0 { lines.append("  \(grouped(ackedFalse)) acks answered acked=false (the lease had lapsed)") }
        if foreignEvents > 0 { lines.append("  \(grouped(foreignEvents)) events for runs of another load run") }
        if subscribersFailed > 0 { lines.append("  \(subscribersFailed) subscriptions ended with an error") }

        let errors = errorsByStatus.sorted { $0.value > $1.value }
        lines.append("errors: " + (errors.isEmpty ? "none" : errors.map { "\($0.key) \(grouped($0.value))" }.joined(separator: ", ")))
        lines.append("")

        func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, width - text.count))
            return left ? text + fill : fill + text
        }
        lines.append(pad("latency ms", 16, left: true) + pad("count", 11) + pad("per s", 10) + pad("errors", 8)
            + Self.percentiles.map { pad($0.key, 9) }.joined() + pad("max", 9))
        for series in plan.series {
            let s = stats[series] ?? SeriesStats()
            var row = pad(series.name, 16, left: true) + pad(grouped(s.ok), 11)
            let perSecond = series.isCall && series != .subscribeExpiry ? grouped(Int((Double(s.ok) / window(series)).rounded())) : ""
            row += pad(perSecond, 10) + (series.isCall ? pad(grouped(s.errorCount + s.itemErrorCount), 8) : pad("", 8))
            row += Self.percentiles.map { pad(ms(s.percentileMs($0.percentile)), 9) }.joined() + pad(ms(s.maxMs), 9)
            switch series {
            case .enqueueBatch: row += "  (\(plan.batchSize) runs each)"
            case .dequeue:
                let each = Double(s.runs) / Double(max(s.ok, 1))
                row += "  (\(String(format: "%.1f", each)) runs each; long-poll waits included; \(grouped(s.empty)) empty answers not timed)"
            case .runLatency, .expiryLateness, .expiryDelivery, .subscribeExpiry: row += "  (\(series.meaning))"
            default: break
            }
            if s.negative > 0 { row += " [\(grouped(s.negative)) negative samples counted as 0: clocks differ]" }
            lines.append(row)
        }
        lines.append(plan.openLoop
            ? "latency of calls answered OK, from the intended send time (open loop: corrected for coordinated omission)"
            : "latency of calls answered OK, from the send (closed loop)")
        return lines.joined(separator: "\n")
    }
}
