internal import DequeModule

/// The commands sent on the current hiredis context, oldest first.
///
/// Replies arrive in send order and complete commands through hiredis'
/// privdata, not through this queue, so completed commands are dropped lazily
/// from the front (on append and when the deadline timer looks at the
/// oldest). The deadlines of waiting commands are non-decreasing front to
/// back (one command timeout per connection, loop time only grows; the
/// handshake commands, which use the connect timeout, have replied before any
/// other command is sent), so the oldest waiting one has the earliest deadline.
struct PendingQueue {
    private var items = Deque<PendingCommand>()

    var isEmpty: Bool { items.isEmpty }

    /// The oldest command still waiting, after dropping completed ones.
    mutating func oldestWaiting() -> PendingCommand? {
        dropCompleted()
        return items.first
    }

    mutating func append(_ command: PendingCommand) {
        dropCompleted()
        items.append(command)
    }

    /// Empties the queue, returning the commands still waiting, oldest first.
    mutating func removeAll() -> [PendingCommand] {
        let waiting = Array(items.filter { !$0.isDone })
        items.removeAll()
        return waiting
    }

    private mutating func dropCompleted() {
        while let first = items.first, first.isDone { items.removeFirst() }
    }
}
