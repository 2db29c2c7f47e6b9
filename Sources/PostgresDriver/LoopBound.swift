/// Carries a loop-confined value through `loop.execute`, whose closure must be
/// Sendable. Only sound when the value is created and used on the loop thread.
struct LoopBound<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
