// AckBatcher: acks that arrive close together go to Redis as one ack.lua
// call per shard (many runs, one answer per run; each run still checked on
// its own: environment, fence, lease).
//
// A shard has at most one batch in flight. The first ack for an idle shard
// is sent on the next loop iteration (so every ack read in the same round
// joins it); acks arriving while a batch is in flight wait for it and go
// together in the next one, or at once when `maxBatch` are waiting. Under
// light load an ack therefore costs no added wait; under heavy load the
// batches grow by themselves. Loop thread only.
import RunQueueStorage
import UVLoop

final class AckBatcher {
    typealias Completion = (Result<QueueStore.FencedOutcome<QueueStore.AckResult>, QueueStoreError>) -> Void

    private let loop: EventLoop
    private let store: QueueStore
    private let clock: ServiceClock
    let maxBatch: Int

    private final class ShardState {
        var items: [QueueStore.AckItem] = []
        var completions: [Completion] = []
        var inFlight = false
        var scheduled = false
    }

    private var shards: [Int: ShardState] = [:]

    init(loop: EventLoop, store: QueueStore, clock: ServiceClock, maxBatch: Int = 256) {
        self.loop = loop
        self.store = store
        self.clock = clock
        self.maxBatch = maxBatch
    }

    func ack(_ item: QueueStore.AckItem, _ completion: @escaping Completion) {
        let shard = store.shards.shard(forEnvironment: item.environmentID)
        let state: ShardState
        if let known = shards[shard] {
            state = known
        } else {
            state = ShardState()
            shards[shard] = state
        }
        state.items.append(item)
        state.completions.append(completion)
        if state.items.count >= maxBatch {
            send(state)
        } else if !state.inFlight && !state.scheduled {
            state.scheduled = true
            loop.schedule(afterMs: 0) { [weak self, state] in
                state.scheduled = false
                if !state.inFlight { self?.send(state) }
            }
        }
    }

    private func send(_ state: ShardState) {
        guard !state.items.isEmpty else { return }
        let items = state.items
        let completions = state.completions
        state.items = []
        state.completions = []
        state.inFlight = true
        store.ack(items, now: clock.nowMs()) { [weak self, state] results in
            state.inFlight = false
            for (completion, result) in zip(completions, results) { completion(result) }
            if !state.items.isEmpty && !state.scheduled { self?.send(state) }
        }
    }
}
