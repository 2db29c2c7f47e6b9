/// Links a caller's task to the call it started: the call id once it is sent,
/// or a cancellation that came first. Loop thread only.
final class CallToken: @unchecked Sendable {
    var callID: UInt64 = 0
    var cancelled = false
}
