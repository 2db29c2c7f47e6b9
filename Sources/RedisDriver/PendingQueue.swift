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
    private var items: [PendingCommand] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }

    /// The oldest command still waiting, after dropping completed ones.
    mutating func oldestWaiting() -> PendingCommand? {
        dropCompleted()
        return isEmpty ? nil : items[head]
    }

    mutating func append(_ command: PendingCommand) {
        dropCompleted()
        items.append(command)
    }

    /// Empties the queue, returning the commands still waiting, oldest first.
    mutating func removeAll() -> [PendingCommand] {
        let waiting = items[head...].filter { !$0.isDone }
        items = []
        head = 0
        return waiting
    }

    private mutating func dropCompleted() {
        while head < items.count, items[head].isDone { head += 1 }
        if head == items.count {
            items.removeAll(keepingCapacity: items.capacity <= 65_536)
            head = 0
        } else if head >= 4_096, head * 2 >= items.count {
            // Amortized O(1): compact once the dead prefix is at least half the array.
            items.removeFirst(head)
            head = 0
        }
    }
}
