import ArgumentParser
import Dispatch
import Foundation
import RunQueueClient
import RunQueueCore
import Synchronization

/// The scenario cannot run (exit 1); `message` goes to stderr.
struct CouldNotRun: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

enum LoadRunner {
    /// Runs the plan, prints the report (and writes the chart), and maps the
    /// outcome to the exit status.
    static func main(_ plan: ScenarioPlan) async throws {
        let report: Report
        do {
            report = try await LoadRun(plan: plan).execute()
        } catch let failure as CouldNotRun {
            Console.error(failure.message)
            throw ExitCode(LoadExit.couldNotRun)
        }
        if plan.json {
            Console.line(report.json().rendered)
        } else {
            Console.line(report.text())
        }
        if let path = plan.plot {
            do {
                try Plot.svg(report).write(toFile: path, atomically: true, encoding: .utf8)
                if !plan.json { Console.line("latency chart: \(path)") }
            } catch {
                Console.error("error: cannot write the chart to \(path): \(error.localizedDescription)")
                throw ExitCode(LoadExit.couldNotRun)
            }
        }
        if let problem = report.nothingSucceeded {
            Console.error("error: \(problem)")
            throw ExitCode(LoadExit.couldNotRun)
        }
    }
}

/// One load run: the clients, the workers and their figures.
final class LoadRun: Sendable {
    let plan: ScenarioPlan
    let ids = RunIDs()
    let recorder = Recorder()
    let counters = Counters()
    /// Ctrl-C once: stop producing (then drain and report as usual).
    let interrupted = Atomic<Bool>(false)
    /// Ctrl-C twice: stop draining too, report what was measured.
    let stopDraining = Atomic<Bool>(false)
    /// The cycle's consumers stop (the queue is drained, or the drain timed out).
    let drained = Atomic<Bool>(false)
    let phase = Mutex("starting")
    /// enqueue's cleanup: acks that failed, by status name.
    let cleanupErrors = Mutex<[String: Int]>([:])

    init(plan: ScenarioPlan) {
        self.plan = plan
    }

    var environments: [String] { (0..<plan.environments).map(ids.environment) }
    var raisesLimits: Bool { plan.concurrencyLimit > 0 && (plan.kind == .cycle || plan.kind == .enqueue) }

    func execute() async throws -> Report {
        let configuration: RunQueueClientConfiguration
        do {
            configuration = try plan.clientConfiguration()
        } catch {
            throw CouldNotRun("error: \(error.code.name): \(error.message)")
        }
        var controlConfiguration = configuration
        controlConfiguration.reconnectWait = .zero  // a server that is down fails the run at once
        let control = RunQueueClient(controlConfiguration)

        // The server answers, and lets this run raise its environments' limits
        // (the default limit would cap the cycle's in-flight runs).
        do {
            _ = try await control.ping()
            if raisesLimits {
                for environment in environments {
                    try await control.setConcurrencyLimit(environmentID: environment, .limit(plan.concurrencyLimit))
                }
            }
        } catch {
            await control.close()
            throw CouldNotRun("error: \(error.code.name): \(error.message)")
        }

        var producers: [RunQueueClient] = []
        var consumers: [RunQueueClient] = []
        var subscribers: [Subscriber] = []
        do {
            for _ in 0..<plan.connections { producers.append(try await Self.connected(configuration)) }
            if plan.kind == .cycle {
                for _ in 0..<plan.consumers { consumers.append(try await Self.connected(configuration)) }
            }
            if plan.expiryScenario {
                subscribers = try await startSubscribers(configuration)
            }
        } catch {
            for subscriber in subscribers { subscriber.probe.cancel() }
            for client in producers + consumers { await client.close() }
            await restoreLimits(control)
            await control.close()
            if let failure = error as? CouldNotRun { throw failure }
            let failure = error as? RunQueueError ?? RunQueueError(.unknown, "\(error)")
            throw CouldNotRun("error: \(failure.code.name): \(failure.message)")
        }

        let startedAt = Date()
        let start = ContinuousClock.now
        let pacer = Pacer(start: start, plan: plan)
        let signals = installInterrupt(pacer)
        defer { signals.cancel() }
        let progress = plan.quiet ? nil : Task { await self.progressLoop(start: start) }

        let consumerClients = consumers
        let consuming = Task {
            await withTaskGroup(of: Void.self) { group in
                for client in consumerClients {
                    for _ in 0..<plan.consumerWindow {
                        group.addTask { await self.consumerLoop(client, start: start) }
                    }
                }
            }
        }
        let subscribing = subscribers.compactMap { $0.task.withLock { $0 } }

        // Produce.
        phase.withLock { $0 = "producing" }
        await withTaskGroup(of: Void.self) { group in
            for client in producers {
                for _ in 0..<plan.window {
                    group.addTask { await self.producerLoop(client, pacer) }
                }
            }
        }
        let produced = ContinuousClock.now

        // Drain: the consumers ack what is left, the subscribers receive what is due.
        phase.withLock { $0 = "draining" }
        switch plan.kind {
        case .cycle:
            // Until every run created was acked, or the server says the queues
            // are empty (a run whose ack failed may still have been completed).
            let deadline = produced + plan.drainTimeout
            var nextCheck = ContinuousClock.now + .milliseconds(250)
            while ContinuousClock.now < deadline, !stopDraining.load(ordering: .relaxed),
                  counters.acked.value < counters.created.value {
                if ContinuousClock.now >= nextCheck {
                    if await leftovers(control) == 0 { break }
                    nextCheck = ContinuousClock.now + .milliseconds(250)
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
        case .expiry, .subscribe:
            let drainMicros = plan.drainTimeout.microseconds
            while !stopDraining.load(ordering: .relaxed) {
                let expected = counters.expiring.value
                if subscribers.allSatisfy({ $0.finished.load(ordering: .relaxed) || $0.received.value >= expected }) { break }
                if wallMicros() > counters.lastExpiresAtMs.load(ordering: .relaxed) * 1000 + drainMicros { break }
                try? await Task.sleep(for: .milliseconds(5))
            }
        case .enqueue:
            break
        }
        let end = ContinuousClock.now
        drained.store(true, ordering: .relaxed)
        consuming.cancel()
        await consuming.value
        for subscriber in subscribers { subscriber.probe.cancel() }
        for task in subscribing { await task.value }

        // Leave nothing behind: drain the enqueue scenario's runs, check the
        // queues, put the limits back.
        var cleanedUp: Int?
        if plan.kind == .enqueue && plan.cleanup {
            phase.withLock { $0 = "cleaning up" }
            cleanedUp = await cleanUp(producers)
        }
        progress?.cancel()
        await progress?.value
        var left: Int?
        if plan.kind == .cycle || (plan.kind == .enqueue && plan.cleanup) {
            left = await leftovers(control)
        }
        await restoreLimits(control)
        for client in producers + consumers { await client.close() }
        await control.close()

        var stats: [Series: SeriesStats] = [:]
        for series in plan.series { stats[series] = recorder.snapshot(series) }
        return Report(
            plan: plan, prefix: ids.prefix, startedAt: startedAt,
            elapsed: (end - start).seconds, produced: (produced - start).seconds,
            stats: stats,
            created: counters.created.value, notCreated: counters.notCreated.value,
            enqueueFailed: counters.enqueueFailed.value, lateSends: counters.lateSends.value, dequeued: counters.dequeued.value,
            acked: counters.acked.value, ackedFalse: counters.ackedFalse.value,
            expiring: counters.expiring.value, events: counters.events.value,
            foreignEvents: counters.foreignEvents.value,
            missingEvents: subscribers.reduce(0) { $0 + max(0, counters.expiring.value - $1.received.value) },
            subscribersFailed: subscribers.filter { $0.failure.withLock { $0 } != nil }.count,
            left: left, cleanedUp: cleanedUp, cleanupMissed: counters.cleanupMissed.value,
            cleanupErrors: cleanupErrors.withLock { $0 }, interrupted: interrupted.load(ordering: .relaxed))
    }

    /// A client whose connection is up.
    private static func connected(_ configuration: RunQueueClientConfiguration) async throws(RunQueueError) -> RunQueueClient {
        let client = RunQueueClient(configuration)
        try await client.connect()
        return client
    }

    /// Ctrl-C once: stop producing, drain, report. Twice: stop draining,
    /// report. Three times: exit at once (130).
    private func installInterrupt(_ pacer: Pacer) -> DispatchSourceSignal {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [self] in
            if !interrupted.exchange(true, ordering: .relaxed) {
                pacer.stop()
                Console.error("\ninterrupted: producers stopped, draining (Ctrl-C again to stop draining and report)")
            } else if !stopDraining.exchange(true, ordering: .relaxed) {
                Console.error("\ninterrupted: reporting now (Ctrl-C again to quit without a report)")
            } else {
                exit(130)
            }
        }
        source.resume()
        return source
    }

    // MARK: - Producers

    private func producerLoop(_ client: RunQueueClient, _ pacer: Pacer) async {
        while let ticket = pacer.take() {
            let sentAt: ContinuousClock.Instant
            if let intended = ticket.intended {
                let now = ContinuousClock.now
                if intended > now {
                    try? await Task.sleep(until: intended, tolerance: .microseconds(100), clock: .continuous)
                } else if now - intended > .milliseconds(1) {
                    counters.lateSends.bump()
                }
                sentAt = intended
            } else {
                sentAt = .now
            }
            let offset = (sentAt - pacer.start).microseconds
            let environment = ids.environment(ticket.index % plan.environments)
            let runs = (0..<ticket.runs).map { k in
                RunDescriptor(runID: ids.runID(ticket.firstRun + k, sentAtMicros: offset), orgID: ids.org, projectID: ids.project,
                              environmentID: environment, environmentType: .production, queue: ids.queue,
                              taskIdentifier: ids.task, workerQueue: ids.workerQueue, ttl: plan.ttl)
            }
            if plan.batchSize == 1 {
                do throws(RunQueueError) {
                    let answer = try await client.enqueue(runs[0])
                    recorder.record(.enqueue, micros: (ContinuousClock.now - sentAt).microseconds, runs: 1)
                    noteEnqueued(created: answer.created, expiresAtMs: answer.expiresAtMs)
                } catch {
                    recorder.fail(.enqueue, error.code)
                    counters.enqueueFailed.bump()
                }
            } else {
                do throws(RunQueueError) {
                    let results = try await client.enqueueBatch(runs)
                    let ok = results.filter { $0.status.code == .ok }.count
                    recorder.record(.enqueueBatch, micros: (ContinuousClock.now - sentAt).microseconds, runs: ok)
                    for result in results {
                        if result.status.code == .ok {
                            noteEnqueued(created: result.created, expiresAtMs: result.expiresAtMs)
                        } else {
                            recorder.itemFail(.enqueueBatch, result.status.code)
                            counters.enqueueFailed.bump()
                        }
                    }
                } catch {
                    recorder.fail(.enqueueBatch, error.code)
                    counters.enqueueFailed.bump(runs.count)
                }
            }
        }
    }

    private func noteEnqueued(created: Bool, expiresAtMs: Int64) {
        if created {
            counters.created.bump()
            if plan.expiryScenario { counters.noteExpiry(expiresAtMs) }
        } else {
            counters.notCreated.bump()
        }
    }

    // MARK: - Consumers (cycle)

    private func consumerLoop(_ client: RunQueueClient, start: ContinuousClock.Instant) async {
        while !Task.isCancelled, !drained.load(ordering: .relaxed) {
            let begin = ContinuousClock.now
            let messages: [RunMessage]
            do throws(RunQueueError) {
                messages = try await client.dequeue(workerQueue: ids.workerQueue, maxRuns: plan.maxRuns, waitMs: plan.waitMs)
            } catch {
                if Task.isCancelled || drained.load(ordering: .relaxed) { break }
                recorder.fail(.dequeue, error.code)
                try? await Task.sleep(for: .milliseconds(10))
                continue
            }
            if messages.isEmpty {
                recorder.empty(.dequeue)
                continue
            }
            recorder.record(.dequeue, micros: (ContinuousClock.now - begin).microseconds, runs: messages.count)
            counters.dequeued.bump(messages.count)
            await withTaskGroup(of: Void.self) { group in
                for message in messages {
                    group.addTask { await self.ack(message, client, start: start) }
                }
            }
        }
    }

    private func ack(_ message: RunMessage, _ client: RunQueueClient, start: ContinuousClock.Instant) async {
        let begin = ContinuousClock.now
        do throws(RunQueueError) {
            let acked = try await client.ack(message)
            let now = ContinuousClock.now
            recorder.record(.ack, micros: (now - begin).microseconds)
            if acked {
                counters.acked.bump()
                if let sent = ids.sentAtMicros(message.runID) {
                    recorder.record(.runLatency, micros: (now - start).microseconds - sent)
                }
            } else {
                counters.ackedFalse.bump()
            }
        } catch {
            if !Task.isCancelled { recorder.fail(.ack, error.code) }
        }
    }

    // MARK: - Subscribers (expiry, subscribe)

    /// Opens the subscriptions and waits until every one has started, so no
    /// run can expire before its subscriber listens.
    private func startSubscribers(_ configuration: RunQueueClientConfiguration) async throws -> [Subscriber] {
        var streams = configuration
        streams.defaultTimeout = nil
        let client = RunQueueClient(streams)  // each subscription makes its own connection
        let filter = ExpiryFilter(orgID: ids.org)
        let subscribers = (0..<plan.subscribers).map { _ in Subscriber(client.subscribeExpiry(filter: filter).makeAsyncIterator()) }
        let begin = ContinuousClock.now
        for subscriber in subscribers {
            subscriber.task.withLock { $0 = Task { await self.subscriberLoop(subscriber) } }
        }
        var waiting = Array(subscribers.indices)
        let limit = begin + max(plan.timeout ?? .seconds(10), .seconds(10))
        while !waiting.isEmpty {
            waiting = waiting.filter { index in
                let subscriber = subscribers[index]
                if subscriber.probe.liveFromCursor != nil {
                    recorder.record(.subscribeExpiry, micros: (ContinuousClock.now - begin).microseconds)
                    subscriber.started.store(true, ordering: .relaxed)
                    return false
                }
                return true
            }
            if let index = waiting.first(where: { subscribers[$0].failure.withLock { $0 } != nil }),
               let error = subscribers[index].failure.withLock({ $0 }) {
                var message = "error: SubscribeExpiry: \(error.code.name): \(error.message)"
                if error.code == .unimplemented {
                    message += "\nthe \(plan.kind.rawValue) scenario needs a server that streams expiry events (SubscribeExpiry); this one does not implement it yet"
                }
                for subscriber in subscribers { subscriber.probe.cancel() }
                throw CouldNotRun(message)
            }
            if ContinuousClock.now > limit {
                for subscriber in subscribers { subscriber.probe.cancel() }
                throw CouldNotRun("error: SubscribeExpiry: \(waiting.count) of \(subscribers.count) subscriptions did not start within \(Int((limit - begin).seconds)) s")
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return subscribers
    }

    private func subscriberLoop(_ subscriber: Subscriber) async {
        var iterator = subscriber.probe
        do throws(RunQueueError) {
            while let event = try await iterator.next() {
                let now = wallMicros()
                guard event.runID.hasPrefix(ids.runPrefix) else {
                    counters.foreignEvents.bump()
                    continue
                }
                recorder.record(.expiryLateness, micros: now - event.expiresAtMs * 1000)
                recorder.record(.expiryDelivery, micros: now - event.expiredAtMs * 1000)
                subscriber.received.bump()
                counters.events.bump()
            }
        } catch {
            subscriber.failure.withLock { $0 = error }
            if subscriber.started.load(ordering: .relaxed) { recorder.fail(.subscribeExpiry, error.code) }
        }
        subscriber.finished.store(true, ordering: .relaxed)
    }

    // MARK: - Cleanup

    /// Dequeues and acks every run of this run's worker queue (not timed),
    /// for as long as rounds make progress (Ctrl-C twice stops it).
    private func cleanUp(_ clients: [RunQueueClient]) async -> Int {
        while !stopDraining.load(ordering: .relaxed) {
            let before = counters.cleanedUp.value
            await withTaskGroup(of: Void.self) { group in
                for client in clients {
                    for _ in 0..<2 {
                        group.addTask { await self.cleanUpLoop(client) }
                    }
                }
            }
            if counters.cleanedUp.value == before { break }
        }
        return counters.cleanedUp.value
    }

    private func cleanUpLoop(_ client: RunQueueClient) async {
        while !stopDraining.load(ordering: .relaxed) {
            guard let messages = try? await client.dequeue(workerQueue: ids.workerQueue, maxRuns: 1000), !messages.isEmpty else { return }
            await withTaskGroup(of: Void.self) { acks in
                for message in messages {
                    acks.addTask {
                        do throws(RunQueueError) {
                            if try await client.ack(message) {
                                self.counters.cleanedUp.bump()
                            } else {
                                self.counters.cleanupMissed.bump()
                            }
                        } catch {
                            self.counters.cleanupMissed.bump()
                            self.cleanupErrors.withLock { $0[error.code.name, default: 0] += 1 }
                        }
                    }
                }
            }
        }
    }

    /// Runs still queued or in flight in this run's environments (nil if QueueStats failed).
    private func leftovers(_ control: RunQueueClient) async -> Int? {
        var total = 0
        for environment in environments {
            guard let stats = try? await control.queueStats(environmentID: environment) else { return nil }
            total += Int(stats.length + stats.inFlight)
        }
        return total
    }

    private func restoreLimits(_ control: RunQueueClient) async {
        guard raisesLimits else { return }
        for environment in environments {
            _ = try? await control.setConcurrencyLimit(environmentID: environment, .clear)
        }
    }

    // MARK: - Progress

    /// One line a second on stderr: calls/s and p99 so far per call, errors, runs.
    private func progressLoop(start: ContinuousClock.Instant) async {
        var last = plan.series.map { recorder.glance($0).ok }
        var lastAt = start
        var tick = 1
        while !Task.isCancelled {
            do {
                try await Task.sleep(until: start + .seconds(tick), clock: .continuous)
            } catch {
                break
            }
            tick += 1
            let now = ContinuousClock.now
            let span = max((now - lastAt).seconds, 0.001)
            var parts: [String] = []
            var errors = 0
            for (i, series) in plan.series.enumerated() {
                let glance = recorder.glance(series)
                errors += glance.errors
                if series == .subscribeExpiry {
                    parts.append("SubscribeExpiry \(glance.ok) streams")
                } else if series.isCall {
                    guard glance.ok > 0 || glance.errors > 0 else { continue }
                    parts.append("\(series.name) \(compact(Double(glance.ok - last[i]) / span))/s p99 \(ms(glance.p99Ms))ms")
                } else if glance.ok > 0 {
                    parts.append("\(series.name) p99 \(ms(glance.p99Ms))ms")
                }
                last[i] = glance.ok
            }
            lastAt = now
            var runs = "\(grouped(counters.created.value)) enqueued"
            switch plan.kind {
            case .cycle: runs += ", \(grouped(counters.acked.value)) acked"
            case .expiry, .subscribe: runs += ", \(grouped(counters.events.value)) events"
            case .enqueue:
                let cleaned = counters.cleanedUp.value
                if cleaned > 0 { runs += ", \(grouped(cleaned)) cleaned up" }
            }
            let line = "[\(String(format: "%3d", Int((now - start).seconds.rounded())))s \(phase.withLock { $0 })] "
                + parts.joined(separator: " | ") + " | errors \(grouped(errors)) | runs \(runs)"
            if Console.stderrIsTerminal {
                Console.stderrRaw("\r\u{1B}[K" + line)
            } else {
                Console.error(line)
            }
        }
        if Console.stderrIsTerminal { Console.stderrRaw("\r\u{1B}[K") }
    }
}

/// One SubscribeExpiry subscriber. `probe` is a copy of the iterator the
/// subscriber's task iterates: both share one driver, so the probe sees when
/// the stream started and can cancel it. (The iterator type is not Sendable;
/// the probe is only used for those two thread-safe operations.)
final class Subscriber: @unchecked Sendable {
    let probe: ExpirySubscription.Iterator
    let received = Atomic<Int>(0)
    let started = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)
    let failure = Mutex<RunQueueError?>(nil)
    let task = Mutex<Task<Void, Never>?>(nil)

    init(_ probe: ExpirySubscription.Iterator) {
        self.probe = probe
    }
}
