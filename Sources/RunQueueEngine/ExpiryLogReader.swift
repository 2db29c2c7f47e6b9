// ExpiryLogReader: the one reader of the expiry event log per server.
//
// It owns a dedicated PostgreSQL connection that LISTENs on
// `runqueue_expiry` (re-issued after every reconnect). On each NOTIFY, on a
// safety tick and after every (re)connect it reads the events after the last
// cursor it holds, in batches, into a bounded ring shared by every
// subscriber of this server. One read is in flight at a time; a wake-up
// during a read just asks for another one.
//
// The ring covers the cursor range (coveredAfter, lastCursor]: every event
// in that range is in it (cursors may have gaps where an append rolled back;
// commit order equals cursor order, so a gap is never filled later). A
// subscriber whose position is at or after `coveredAfter` reads from the
// ring; one further behind pages from PostgreSQL itself. Loop thread only.
internal import DequeModule
import Logging
import PostgresDriver
import RunQueueCore
import RunQueueStorage
import UVLoop

final class ExpiryLogReader {
    struct Settings {
        /// Events kept in memory for subscribers (the newest ones).
        var capacity = 10_000
        /// Events per tail read.
        var batchSize = 500
        /// Reads even without a NOTIFY this often (a lost notification, a
        /// LISTEN that is being re-issued).
        var safetyTickMs: UInt64 = 1000
    }

    private let loop: EventLoop
    private let connection: PostgresConnection
    private let records: RunRecords
    private let logger: Logger
    let settings: Settings
    private var ring: EventRing
    /// Every event with a cursor in (coveredAfter, lastCursor] is in the ring.
    private(set) var coveredAfter: UInt64 = 0
    private(set) var lastCursor: UInt64 = 0
    /// False until the first bounds read after start (positions unknown).
    private(set) var isReady = false
    private var reading = false
    private var readAgain = false
    private var tick: LoopTimer?
    private var closed = false
    /// Called after new events entered the ring (or the reader became ready).
    var onAppended: (() -> Void)?

    init(loop: EventLoop, connection: PostgresConnection, records: RunRecords, logger: Logger, settings: Settings = Settings()) {
        self.loop = loop
        self.connection = connection
        self.records = records
        self.logger = logger
        self.settings = settings
        ring = EventRing(capacity: max(1, settings.capacity))
    }

    func start() {
        connection.onNotification = { [unowned self] notification in
            if notification.channel == RunRecords.expiryChannel { wake() }
        }
        connection.onStateChange = { [unowned self] state in
            if case .connected = state { listen() }
        }
        let tick = LoopTimer(loop: loop)
        tick.start(afterMs: settings.safetyTickMs, repeatMs: settings.safetyTickMs) { [unowned self] in wake() }
        self.tick = tick
        connection.connect()
    }

    private func listen() {
        connection.query("LISTEN \(RunRecords.expiryChannel)") { [weak self] result in
            guard let self, !closed else { return }
            if case .failure(let error) = result {
                logger.warning("expiry log reader: LISTEN failed; reading on the safety tick", metadata: ["error": "\(error)"])
            }
            // Whatever was appended while we were not listening.
            wake()
        }
    }

    /// Reads whatever was appended after `lastCursor`.
    func wake() {
        guard !closed, connection.isConnected else { return }
        if reading { readAgain = true; return }
        reading = true
        readAgain = false
        if !isReady {
            records.expiryLogBounds(on: connection) { [weak self] result in
                guard let self, !closed else { return }
                reading = false
                switch result {
                case .success(let bounds):
                    lastCursor = bounds.newest
                    coveredAfter = bounds.newest
                    isReady = true
                    onAppended?()
                    wake()
                case .failure(let error):
                    // The table may not exist yet (migrations run on the writer): the tick retries.
                    logger.debug("expiry log reader: cannot read the log bounds yet", metadata: ["error": "\(error.message)"])
                }
            }
            return
        }
        records.expiryEvents(after: lastCursor, limit: settings.batchSize, on: connection) { [weak self] result in
            guard let self, !closed else { return }
            reading = false
            switch result {
            case .success(let page):
                for event in page.events where event.cursor > lastCursor {
                    if let evicted = ring.append(event) { coveredAfter = evicted.cursor }
                    lastCursor = event.cursor
                }
                if !page.events.isEmpty { onAppended?() }
                if page.events.count >= settings.batchSize || readAgain { wake() }
            case .failure(let error):
                logger.debug("expiry log reader: read failed; retrying", metadata: ["error": "\(error.message)"])
                if readAgain { wake() }
            }
        }
    }

    /// Index in the ring of the first event with a cursor greater than `cursor`.
    func firstIndex(after cursor: UInt64) -> Int { ring.firstIndex(after: cursor) }
    var endIndex: Int { ring.count }
    subscript(index: Int) -> ExpiryEvent { ring[index] }

    func close() {
        closed = true
        tick?.close()
        tick = nil
        onAppended = nil
        connection.onNotification = nil
    }
}

/// The newest events, at most `capacity`, in cursor order; appending to a
/// full ring evicts the oldest.
struct EventRing {
    private var events = Deque<ExpiryEvent>()
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { events.count }

    subscript(index: Int) -> ExpiryEvent { events[index] }

    /// Appends; returns the evicted event when the ring was full.
    mutating func append(_ event: ExpiryEvent) -> ExpiryEvent? {
        events.append(event)
        return events.count > capacity ? events.removeFirst() : nil
    }

    /// Index of the first event with a cursor greater than `cursor` (binary search).
    func firstIndex(after cursor: UInt64) -> Int {
        var low = 0
        var high = count
        while low < high {
            let mid = (low + high) / 2
            if events[mid].cursor <= cursor { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
