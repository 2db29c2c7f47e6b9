extension Array where Element == UInt8 {
    /// A copy with the first byte of the first occurrence of `marker` set to
    /// `byte`: how a test puts bytes no encoder writes (a NUL, ill-formed
    /// UTF-8) inside an encoded string. Nil when `marker` does not occur.
    public func settingFirstByte(of marker: String, to byte: UInt8) -> [UInt8]? {
        let pattern = Array(marker.utf8)
        guard !pattern.isEmpty, pattern.count <= count,
              let at = (0...(count - pattern.count)).first(where: { self[$0..<$0 + pattern.count].elementsEqual(pattern) })
        else { return nil }
        var copy = self
        copy[at] = byte
        return copy
    }
}
