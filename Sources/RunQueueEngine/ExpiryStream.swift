// SubscribeExpiry: each stream keeps its own cursor and reads the durable
// expiry event log, from the shared ring of the server's ExpiryLogReader
// when its position is still covered there, else by paging from PostgreSQL
// itself (one query in flight per stream, at most `pageSize` events each).
//
// Start position: replay = after (oldest - 1); resume_after > 0 must lie in
// [oldest - 1, newest] (an empty log reports oldest = newest + 1, so only
// resume_after = newest is accepted there), else OUT_OF_RANGE naming both;
// otherwise live = after newest. `newest` is read under the append lock in
// shared mode, so no append is in flight and a live start skips nothing.
//
// Flow control: a stream sends nothing while its connection holds more than
// `maxQueuedBytes` of unsent responses and resumes when they drain; it holds
// no events of its own meanwhile (it re-reads from the ring or PostgreSQL),
// so server memory stays bounded by the ring plus one page per stream.
// A stream is never dropped for being slow and never skips a cursor.
//
// Cancel or a closing connection ends the stream with end_of_stream and
// CANCELLED; server shutdown ends it with UNAVAILABLE (clients resume after
// their last cursor). Loop thread only.
import Logging
import RunQueueCore
import RunQueueStorage
import UVLoop

final class ExpiryStreams {
    struct Settings {
        /// Above this many unsent response bytes on its connection a stream pauses.
        var maxQueuedBytes = 1 << 20
        /// Events per PostgreSQL page for a stream behind the ring.
        var pageSize = 500
        /// Cursor span one filtered page query examines at most.
        var scanWindow: UInt64 = 100_000
        /// Delay before a failed page query is retried.
        var retryMs: UInt64 = 1000
    }

    let loop: EventLoop
    let records: RunRecords
    let reader: ExpiryLogReader
    let logger: Logger
    let settings: Settings
    private var streams: [ObjectIdentifier: ExpiryStream] = [:]
    private var draining = false
    /// Counters for tests and operators.
    private(set) var pauses = 0
    private(set) var pages = 0

    init(loop: EventLoop, records: RunRecords, reader: ExpiryLogReader, logger: Logger, settings: Settings) {
        self.loop = loop
        self.records = records
        self.reader = reader
        self.logger = logger
        self.settings = settings
        reader.onAppended = { [unowned self] in
            for stream in Array(streams.values) { stream.pump() }
        }
    }

    var streamCount: Int { streams.count }

    func subscribe(_ request: SubscribeExpiryRequest, _ context: any EngineCall) {
        do {
            let filter = request.filter
            if !filter.orgID.isEmpty { try Validation.identifier(filter.orgID, field: "filter.org_id") }
            if !filter.projectID.isEmpty { try Validation.identifier(filter.projectID, field: "filter.project_id") }
            if !filter.environmentID.isEmpty { try Validation.identifier(filter.environmentID, field: "filter.environment_id") }
            if !filter.queue.isEmpty { try Validation.queueName(filter.queue, field: "filter.queue") }
        } catch {
            context.fail(.invalidArgument, error.message)
            return
        }
        guard !draining else {
            context.fail(.unavailable, "the server is shutting down; subscribe to another instance")
            return
        }
        let stream = ExpiryStream(hub: self, context: context, filter: request.filter)
        context.onCancel = { [weak stream] in stream?.end(Status(.cancelled, "the stream was cancelled")) }
        records.expiryLogBounds { [weak self] result in
            guard let self, !stream.isDone else { return }
            switch result {
            case .failure(let error):
                stream.fail(.unavailable, "cannot read the expiry log: \(error.message)")
            case .success(let bounds):
                let start: UInt64
                // Cursors start at 1; the guard keeps a damaged bound from trapping.
                let beforeOldest = bounds.oldest > 0 ? bounds.oldest - 1 : 0
                if request.replay {
                    start = beforeOldest
                } else if request.resumeAfter > 0 {
                    guard request.resumeAfter <= bounds.newest, request.resumeAfter >= beforeOldest else {
                        stream.fail(.outOfRange, "resume_after \(request.resumeAfter) is outside the retained log (oldest \(bounds.oldest), newest \(bounds.newest))")
                        return
                    }
                    start = request.resumeAfter
                } else {
                    start = bounds.newest
                }
                guard !draining else {
                    stream.fail(.unavailable, "the server is shutting down; subscribe to another instance")
                    return
                }
                streams[ObjectIdentifier(stream)] = stream
                stream.begin(after: start, liveFrom: bounds.newest)
            }
        }
    }

    func removed(_ stream: ExpiryStream) {
        streams[ObjectIdentifier(stream)] = nil
    }

    func paused() {
        pauses += 1
        ExpiryTuning.countPause()
    }

    func paged() {
        pages += 1
        ExpiryTuning.countPage()
    }

    /// Shutdown began: every stream ends with UNAVAILABLE (clients resume elsewhere or later).
    func drain() {
        draining = true
        for stream in Array(streams.values) {
            stream.end(Status(.unavailable, "the server is shutting down; resume after cursor \(stream.cursor)"))
        }
    }

    func close() {
        drain()
        reader.close()
    }
}

final class ExpiryStream {
    private unowned let hub: ExpiryStreams
    private let context: any EngineCall
    private let filter: ExpiryFilter
    /// Every matching event up to here was sent (or the start position).
    private(set) var cursor: UInt64 = 0
    private var started = false
    private var paging = false
    private var waitingDrain = false
    private var retryTimer: LoopTimer?
    private(set) var isDone = false

    init(hub: ExpiryStreams, context: any EngineCall, filter: ExpiryFilter) {
        self.hub = hub
        self.context = context
        self.filter = filter
    }

    func begin(after start: UInt64, liveFrom: UInt64) {
        cursor = start
        started = true
        context.send(.subscribeExpiry(SubscribeExpiryResponse(liveFromCursor: liveFrom)))
        pump()
    }

    private func matches(_ event: ExpiryEvent) -> Bool {
        (filter.orgID.isEmpty || filter.orgID == event.orgID)
            && (filter.projectID.isEmpty || filter.projectID == event.projectID)
            && (filter.environmentID.isEmpty || filter.environmentID == event.environmentID)
            && (filter.queue.isEmpty || filter.queue == event.queue)
    }

    private var overLimit: Bool { context.queuedBytes > hub.settings.maxQueuedBytes }

    /// Sends what it can: from the ring, or starts a page read; stops when
    /// the connection is full (resumed on drain), caught up (resumed by the
    /// reader's next append), or a page is in flight (resumed by its answer).
    func pump() {
        guard started, !isDone, !paging, !waitingDrain, retryTimer == nil else { return }
        if context.isCancelled {
            end(Status(.cancelled, "the stream was cancelled"))
            return
        }
        let reader = hub.reader
        while true {
            if overLimit {
                waitingDrain = true
                hub.paused()
                context.whenDrained { [weak self] in
                    guard let self else { return }
                    waitingDrain = false
                    pump()
                }
                return
            }
            guard reader.isReady else { return }
            if cursor < reader.coveredAfter {
                page()
                return
            }
            if cursor >= reader.lastCursor { return }
            var index = reader.firstIndex(after: cursor)
            while index < reader.endIndex {
                let event = reader[index]
                cursor = event.cursor
                index += 1
                if matches(event) {
                    context.send(.expiryEvent(event))
                    if overLimit { break }
                }
            }
        }
    }

    private func page() {
        paging = true
        hub.paged()
        let settings = hub.settings
        hub.records.expiryEvents(after: cursor, filter: filter, limit: settings.pageSize,
                                 scanWindow: settings.scanWindow) { [weak self] result in
            guard let self, !isDone else { return }
            paging = false
            switch result {
            case .success(let page):
                for event in page.events where event.cursor > cursor {
                    cursor = event.cursor
                    context.send(.expiryEvent(event))
                }
                if page.events.count < settings.pageSize { cursor = max(cursor, page.scannedThrough) }
                pump()
            case .failure(let error):
                hub.logger.warning("expiry stream: page read failed; retrying",
                                   metadata: ["error": "\(error.message)", "cursor": "\(cursor)"])
                retryTimer = hub.loop.schedule(afterMs: settings.retryMs) { [weak self] in
                    guard let self else { return }
                    retryTimer = nil
                    pump()
                }
            }
        }
    }

    /// Ends the stream with `end_of_stream` and `status`.
    func end(_ status: Status) {
        guard !isDone else { return }
        release()
        context.finish(status)
    }

    /// Ends the call with an error before the stream started.
    func fail(_ code: StatusCode, _ message: String) {
        guard !isDone else { return }
        release()
        context.fail(code, message)
    }

    private func release() {
        isDone = true
        retryTimer?.close()
        retryTimer = nil
        context.onCancel = nil
        hub.removed(self)
    }
}
