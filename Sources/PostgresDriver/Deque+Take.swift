internal import DequeModule

extension Deque {
    /// Empties the queue, returning what it held in order.
    mutating func takeAll() -> [Element] {
        let all = Array(self)
        removeAll()
        return all
    }

    /// Removes and returns the elements matching `predicate`, keeping the order of both.
    mutating func take(where predicate: (Element) -> Bool) -> [Element] {
        let taken = Array(filter(predicate))
        if !taken.isEmpty { removeAll(where: predicate) }
        return taken
    }
}
