import Foundation
import RedisDriver
import UVLoop

extension Int64 {
    /// `self + other`, held at the bounds instead of trapping.
    func addingSaturating(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}

/// The service clock: this server's wall clock corrected by an offset
/// measured from Redis `TIME` (about every 10 s), so every instance stamps
/// scripts with the same notion of now. Scripts take `now` as an argument
/// (no hidden clock); timers use the loop's monotonic clock. Loop thread only.
final class ServiceClock {
    private(set) var offsetMs: Int64 = 0
    private var timer: LoopTimer?

    func nowMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) + offsetMs
    }

    /// Milliseconds from now until `deadline` for a timer: 0 when it has
    /// passed. Saturating: a deadline can come from another instance's
    /// announcement, so no value may trap here.
    func msUntil(_ deadline: Int64) -> UInt64 {
        let (delay, overflow) = deadline.subtractingReportingOverflow(nowMs())
        if overflow { return deadline > 0 ? UInt64(Int64.max) : 0 }
        return delay > 0 ? UInt64(delay) : 0
    }

    /// Measures the offset now and every `periodMs` on `redis`.
    func start(loop: EventLoop, redis: RedisConnection, periodMs: UInt64 = 10_000) {
        let timer = LoopTimer(loop: loop)
        timer.start(afterMs: 0, repeatMs: periodMs) { [weak self] in self?.measure(redis) }
        self.timer = timer
    }

    private func measure(_ redis: RedisConnection) {
        guard redis.isConnected else { return }
        let sent = Date().timeIntervalSince1970
        redis.send("TIME") { [weak self] result in
            guard let self, case .success(.array(let parts)) = result, parts.count == 2,
                  let seconds = parts[0].int, let micros = parts[1].int else { return }
            let received = Date().timeIntervalSince1970
            let localMid = (sent + received) / 2 * 1000
            let redisMs = Double(seconds) * 1000 + Double(micros) / 1000
            offsetMs = Int64((redisMs - localMid).rounded())
        }
    }

    func close() {
        timer?.close()
        timer = nil
    }
}
