// Process-wide knobs and counters of the SubscribeExpiry machinery, for
// tests (a small ring forces slow subscribers onto PostgreSQL paging) and
// for operators reading counters before the metrics endpoint exists.
// Servers started after a change pick the knobs up; nil = the default.
import Synchronization

public enum ExpiryTuning {
    private static let knobs = Mutex<(capacity: Int?, pageSize: Int?)>((nil, nil))
    private static let pauseCount = Atomic<Int>(0)
    private static let pageCount = Atomic<Int>(0)

    /// Events the log reader keeps in memory (default 10,000).
    public static var bufferCapacity: Int? {
        get { knobs.withLock { $0.capacity } }
        set { knobs.withLock { $0.capacity = newValue } }
    }

    /// Events per PostgreSQL page for a subscriber behind the ring (default 500).
    public static var pageSize: Int? {
        get { knobs.withLock { $0.pageSize } }
        set { knobs.withLock { $0.pageSize = newValue } }
    }

    /// Times a stream stopped sending because its connection was full.
    public static var pauses: Int { pauseCount.load(ordering: .relaxed) }
    /// PostgreSQL pages read by streams behind the ring.
    public static var pages: Int { pageCount.load(ordering: .relaxed) }

    static func countPause() { pauseCount.wrappingAdd(1, ordering: .relaxed) }
    static func countPage() { pageCount.wrappingAdd(1, ordering: .relaxed) }
}
