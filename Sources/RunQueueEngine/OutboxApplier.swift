// OutboxApplier: writes each shard's outbox to PostgreSQL.
//
// Every change after creation is appended by its Lua script to the shard's
// outbox stream; the stream holds the entries PostgreSQL has not applied. A
// pass reads, for every shard kicked since the last pass, the entries after
// this server's cursor (up to `batch` each), applies them all in one guarded
// transaction (RunRecords.apply), then per shard clears the finishing marks
// they set and trims what is done (outbox_done.lua). One pass runs at a time
// on this server; any number of servers may run passes on the same shard
// (each reads from the start once, so entries of a dead server are picked up
// by the others), because applying an entry twice changes nothing.
//
// DEQUEUED entries are held back for `dequeuedLagMs` (RUNQUEUE_DEQUEUED_WRITE_LAG_MS) (docs/durability.md: DEQUEUED
// may be written behind, within a second, and skipped if the ack comes
// first): most runs are acked within that time, their C entry supersedes
// the D, and the row is written once instead of twice. Held entries stay in
// the stream (it is trimmed only below the oldest one), so a crash loses
// nothing; they are simply read again.
//
// Calls that must answer after PostgreSQL has their change (Ack, Nack) wait
// for their entry: an entry is applied once a pass that started after it was
// written has covered its position and committed (they answer at the commit,
// before the pass clears the marks in Redis). The wait is bounded; past it the call
// answers UNAVAILABLE while the Redis change stands and is applied later.
//
// An entry the caller already holds (the C entry its ack appended) is also
// written at once, without waiting for a pass to read it back: such entries
// go to PostgreSQL together, one transaction in flight at a time, and their
// calls answer at its commit. This only shortens the wait; the stream stays
// the record: a pass still reads the entry, skips writing it again, clears
// its mark and trims it, and if the direct write fails the pass writes it.
//
// While a shard's outbox cannot drain (PostgreSQL down), lease lapses on
// that shard are paused (a self-expiring key the scripts check), so an
// outage does not burn attempts.
internal import DequeModule
import Logging
import RunQueueStorage
import UVLoop

final class OutboxApplier {
    private let loop: EventLoop
    private let store: QueueStore
    private let records: RunRecords
    private let logger: Logger
    let waitBoundMs: UInt64
    /// Stream entries read per shard and pass.
    private let batch = 500
    /// Runs written per shard and pass: an entry of a claim or an ack batch
    /// carries up to a few hundred, so a read is cut at the entry where the
    /// runs reach this (the rest is read by the next pass).
    private let maxRunsPerPass = 20_000
    /// How long a D entry waits for a later entry of its run before it is written.
    private let dequeuedLagMs: UInt64
    private var shards: [ShardState]
    /// Shards to read in the next pass.
    private var dirty = Set<Int>()
    /// A pass is running (one at a time: they all write on one connection).
    private var running = false
    private var retryTimer: LoopTimer?
    private var ticker: LoopTimer?
    private var sweeper: LoopTimer?
    private var closed = false

    private final class Waiter {
        let sequence: Int64
        /// Set when the caller handed the entry over for a direct write.
        let runID: String?
        let deadlineMs: UInt64
        let completion: (Bool) -> Void
        var done = false
        init(sequence: Int64, runID: String?, deadlineMs: UInt64, completion: @escaping (Bool) -> Void) {
            self.sequence = sequence
            self.runID = runID
            self.deadlineMs = deadlineMs
            self.completion = completion
        }
    }

    /// One run of one stream entry (an entry may carry many runs).
    private struct EntryRun: Hashable {
        let sequence: Int64
        let runID: String
    }

    private final class ShardState {
        var failing = false
        var waiters: [Waiter] = []
        /// The last entry read and dealt with (applied, superseded or held).
        var cursor: String?
        /// D entries read but not written yet, in stream order, with the loop time they were read.
        var held = Deque<(entry: OutboxEntry, readAtMs: UInt64)>()
        var heldTimer: LoopTimer?
        /// Runs of entries written directly, not yet read back by a pass.
        var writtenDirectly = Set<EntryRun>()
    }

    /// Entries handed over by their callers, waiting for the next direct write.
    private var direct: [(shard: Int, entry: OutboxEntry)] = []
    private var directRunning = false
    private var directScheduled = false

    init(loop: EventLoop, store: QueueStore, records: RunRecords, logger: Logger, dequeuedLagMs: UInt64,
         waitBoundMs: UInt64 = 5000, tickMs: UInt64 = 1000) {
        self.dequeuedLagMs = dequeuedLagMs
        self.loop = loop
        self.store = store
        self.records = records
        self.logger = logger
        self.waitBoundMs = waitBoundMs
        shards = (0..<store.shards.shardCount).map { _ in ShardState() }
        let ticker = LoopTimer(loop: loop)
        ticker.start(afterMs: tickMs, repeatMs: tickMs) { [unowned self] in
            for shard in 0..<shards.count { kick(shard) }
        }
        self.ticker = ticker
    }

    /// Reads `shard` in a pass now (or in the one after the pass running).
    func kick(_ shard: Int) {
        guard !closed else { return }
        dirty.insert(shard)
        if !running { pass() }
    }

    /// Calls `completion(true)` once PostgreSQL has the entry, or
    /// `completion(false)` after the wait bound.
    /// With `entry` (the entry itself, as its script appended it), the entry
    /// is also written directly, without waiting for a pass to read it.
    func waitApplied(shard: Int, entryID: String, entry: OutboxEntry? = nil, _ completion: @escaping (Bool) -> Void) {
        let sequence = OutboxEntry.sequence(ofEntryID: entryID)
        // Deadlines are checked by one sweep timer, not a timer per waiter:
        // under load thousands of acks wait at once.
        let waiter = Waiter(sequence: sequence, runID: entry?.runID, deadlineMs: loop.nowMs + waitBoundMs, completion: completion)
        let state = shards[shard]
        state.waiters.append(waiter)
        armSweep()
        // A pass already running may have read past this entry's position
        // before it was written: ask for another.
        kick(shard)
        if let entry {
            direct.append((shard, entry))
            scheduleDirect()
        }
    }

    /// The first entry handed over while no direct write runs is written on
    /// the next loop iteration (with every other one handed over by then);
    /// those arriving during a write go together in the next.
    private func scheduleDirect() {
        guard !directRunning, !directScheduled, !closed else { return }
        directScheduled = true
        _ = loop.schedule(afterMs: 0) { [weak self] in
            guard let self else { return }
            directScheduled = false
            writeDirect()
        }
    }

    private func writeDirect() {
        guard !direct.isEmpty, !closed else { return }
        let batch = direct
        direct.removeAll()
        directRunning = true
        records.apply(batch.map(\.entry)) { [unowned self] result in
            directRunning = false
            if case .success = result {
                var byShard: [Int: Set<EntryRun>] = [:]
                for item in batch {
                    byShard[item.shard, default: []].insert(EntryRun(sequence: item.entry.sequence, runID: item.entry.runID))
                }
                for (shard, written) in byShard {
                    let state = shards[shard]
                    state.writtenDirectly.formUnion(written)
                    resolve(shard, state.waiters) { waiter in
                        waiter.runID.map { written.contains(EntryRun(sequence: waiter.sequence, runID: $0)) } ?? false
                    }
                }
            }
            // On failure the passes write these entries (they are in the stream).
            if !direct.isEmpty { scheduleDirect() }
        }
    }

    /// One pass over every shard kicked since the last: their outboxes are
    /// read together (pipelined), written to PostgreSQL in ONE transaction,
    /// then acknowledged per shard. One transaction per pass instead of one
    /// per shard: with several busy shards the applier's connection was the
    /// limit (hundreds of small transactions a second, one after another).
    private func pass() {
        let todo = dirty.sorted()
        dirty.removeAll()
        guard !todo.isEmpty, !closed else { return }
        running = true
        let covered = todo.map { shards[$0].waiters }
        var reads = [Result<[OutboxEntry], QueueStoreError>?](repeating: nil, count: todo.count)
        var left = todo.count
        for (index, shard) in todo.enumerated() {
            store.readOutbox(shard: shard, after: shards[shard].cursor, count: batch) { [unowned self] result in
                reads[index] = result
                left -= 1
                if left == 0 { write(todo, reads: reads.compactMap { $0 }, covered: covered) }
            }
        }
    }

    private func write(_ todo: [Int], reads: [Result<[OutboxEntry], QueueStoreError>], covered: [[Waiter]]) {
        var work: [(index: Int, entries: [OutboxEntry], full: Bool, plan: Plan)] = []
        for (index, shard) in todo.enumerated() {
            switch reads[index] {
            case .failure(let error):
                failed(shard, error: "\(error)")
            case .success(let read):
                let (entries, full) = cut(read)
                let plan = plan(shards[shard], read: entries)
                if plan.changes {
                    work.append((index, entries, full, plan))
                } else {
                    resolve(shard, covered[index], upTo: .max)
                    healthy(shard)
                }
            }
        }
        guard !work.isEmpty else { passDone(); return }
        // The highest shard sequence each shard's pass leaves applied (or superseded).
        var progress: [Int: Int64] = [:]
        for item in work {
            if let top = item.plan.done.map(\.shardSequence).max(), top > 0 { progress[todo[item.index]] = top }
        }
        records.apply(work.flatMap(\.plan.write), progress: progress) { [unowned self] applied in
            if case .failure(let error) = applied {
                for item in work { failed(todo[item.index], error: "\(error)") }
                passDone()
                return
            }
            // Committed: the calls waiting for these entries answer now,
            // not after the Redis clean-up below (a retry meanwhile finds
            // the finishing mark and waits for the next pass, which resolves it).
            for item in work {
                resolve(todo[item.index], covered[item.index], upTo: item.full ? item.entries.last?.sequence ?? 0 : .max)
            }
            var left = work.count
            for item in work {
                let shard = todo[item.index]
                store.outboxDone(shard: shard, entries: item.plan.done, trimBelow: item.plan.trimBelow) { [unowned self] done in
                    if case .failure(let error) = done {
                        // Applied but not acknowledged: read them again (applying twice changes nothing).
                        failed(shard, error: "\(error)")
                    } else {
                        let state = shards[shard]
                        state.cursor = item.plan.cursor
                        state.held = item.plan.held
                        // Everything up to the cursor has been read back.
                        if let last = item.entries.last?.sequence {
                            state.writtenDirectly = state.writtenDirectly.filter { $0.sequence > last }
                        }
                        if item.full { dirty.insert(shard) }
                        armHeldTimer(shard)
                        healthy(shard)
                    }
                    left -= 1
                    if left == 0 { passDone() }
                }
            }
        }
    }

    /// A read cut to at most `maxRunsPerPass` runs, at a stream-entry
    /// boundary (one entry is never split), and whether more may follow it
    /// in the stream: the read was cut, or it returned `batch` stream entries.
    private func cut(_ read: [OutboxEntry]) -> (entries: [OutboxEntry], full: Bool) {
        var streamEntries = 0
        var last: String?
        for (index, entry) in read.enumerated() where entry.id != last {
            if index >= maxRunsPerPass { return (Array(read[..<index]), true) }
            streamEntries += 1
            last = entry.id
        }
        return (read, streamEntries == batch)
    }

    private func passDone() {
        running = false
        if !dirty.isEmpty && !closed { pass() }
    }

    private struct Plan {
        /// Entries dealt with: their marks are cleared once PostgreSQL has them.
        var done: [OutboxEntry] = []
        /// The part of `done` to write (the rest was written directly).
        var write: [OutboxEntry] = []
        var held = Deque<(entry: OutboxEntry, readAtMs: UInt64)>()
        var cursor: String?
        var trimBelow: String?
        var changes = false
    }

    /// What a pass writes, keeps holding and trims, given the entries it read.
    /// Nothing of `state` changes here: a failed pass leaves it as it was.
    private func plan(_ state: ShardState, read entries: [OutboxEntry]) -> Plan {
        let now = loop.nowMs
        var plan = Plan()
        var held = state.held
        var newest: [String: Int64] = [:]  // run -> sequence of its latest entry written in this pass
        for entry in entries {
            if entry.op == .dequeued {
                held.append((entry, now))
            } else {
                plan.write.append(entry)
                newest[entry.runID] = entry.sequence
            }
        }
        // A later entry of the same run supersedes a held D: nothing to write for it.
        if !newest.isEmpty {
            held.removeAll { item in newest[item.entry.runID].map { $0 > item.entry.sequence } ?? false }
        }
        // Held long enough: write it now.
        while let first = held.first, now >= first.readAtMs + dequeuedLagMs {
            plan.write.append(first.entry)
            held.removeFirst()
        }
        plan.held = held
        plan.done = plan.write
        if !state.writtenDirectly.isEmpty {
            plan.write.removeAll { state.writtenDirectly.contains(EntryRun(sequence: $0.sequence, runID: $0.runID)) }
        }
        plan.cursor = entries.last?.id ?? state.cursor
        plan.trimBelow = held.first?.entry.id ?? plan.cursor.map { OutboxEntry.successorID(of: $0) }
        // With nothing read, a pass only has work when held entries came due.
        plan.changes = !entries.isEmpty || held.count != state.held.count
        return plan
    }

    /// Runs a pass when the oldest held D entry is due.
    private func armHeldTimer(_ shard: Int) {
        let state = shards[shard]
        guard state.heldTimer == nil, !closed, let first = state.held.first else { return }
        let now = loop.nowMs
        let due = first.readAtMs + dequeuedLagMs
        state.heldTimer = loop.schedule(afterMs: due > now ? due - now : 0) { [weak self] in
            guard let self else { return }
            shards[shard].heldTimer = nil
            kick(shard)
        }
    }

    private func resolve(_ shard: Int, _ covered: [Waiter], upTo: Int64) {
        resolve(shard, covered) { $0.sequence <= upTo }
    }

    /// Answers (applied) the waiters of `candidates` that `applied` picks.
    private func resolve(_ shard: Int, _ candidates: [Waiter], where applied: (Waiter) -> Bool) {
        var any = false
        for waiter in candidates where !waiter.done && applied(waiter) {
            waiter.done = true
            any = true
            waiter.completion(true)
        }
        if any { shards[shard].waiters.removeAll { $0.done } }
    }

    /// Fails the waiters whose bound passed; runs while any waiter waits.
    private func armSweep() {
        guard sweeper == nil, !closed else { return }
        let sweeper = LoopTimer(loop: loop)
        self.sweeper = sweeper
        sweeper.start(afterMs: 100, repeatMs: 100) { [unowned self] in
            let now = loop.nowMs
            var waiting = false
            for state in shards {
                var expired = false
                for waiter in state.waiters where !waiter.done && waiter.deadlineMs <= now {
                    waiter.done = true
                    expired = true
                    waiter.completion(false)
                }
                if expired { state.waiters.removeAll { $0.done } }
                if !state.waiters.isEmpty { waiting = true }
            }
            if !waiting {
                self.sweeper?.close()
                self.sweeper = nil
            }
        }
    }

    /// A pass could not drain `shard`: pause its lapses, try again soon while calls wait.
    private func failed(_ shard: Int, error: String) {
        let state = shards[shard]
        if !state.failing {
            logger.warning("outbox cannot drain; pausing lease lapses", metadata: ["shard": "\(shard)", "error": "\(error)"])
        }
        state.failing = true
        // Renewed on every failing pass; expires by itself if this server dies.
        store.pauseLapses(shard: shard, on: true, ttlMs: 5000) { _ in }
        guard !state.waiters.isEmpty, retryTimer == nil, !closed else { return }
        retryTimer = loop.schedule(afterMs: 200) { [weak self] in
            guard let self else { return }
            retryTimer = nil
            for (index, state) in shards.enumerated() where state.failing { kick(index) }
        }
    }

    private func healthy(_ shard: Int) {
        let state = shards[shard]
        guard state.failing else { return }
        state.failing = false
        logger.notice("outbox draining again; lease lapses resumed", metadata: ["shard": "\(shard)"])
        store.pauseLapses(shard: shard, on: false, ttlMs: 0) { _ in }
    }

    func close() {
        closed = true
        ticker?.close()
        ticker = nil
        sweeper?.close()
        sweeper = nil
        retryTimer?.close()
        retryTimer = nil
        for state in shards {
            state.heldTimer?.close()
            state.heldTimer = nil
            let waiters = state.waiters
            state.waiters.removeAll()
            for waiter in waiters where !waiter.done {
                waiter.done = true
                waiter.completion(false)
            }
        }
    }
}
