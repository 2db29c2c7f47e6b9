internal import CProtobufC

/// A bump allocator that owns every C allocation of one encode or one decode.
///
/// Encoding needs C structs, `char *` strings and pointer arrays that live until
/// `*_pack` returns; decoding lets protobuf-c's `*_unpack` allocate through
/// `protobufAllocator`. Either way nothing is freed piecemeal: `with` releases
/// everything at once when its body returns, so a frame costs no malloc at all
/// when it fits the 1 KiB inline block (on the stack via
/// `withUnsafeTemporaryAllocation`), and a few doubling heap blocks otherwise.
///
/// Invariants:
/// - A `WireArena` value and every pointer it hands out are valid only inside the
///   `with` body that produced it; they must not escape it.
/// - Memory is never reused within one `with`: protobuf-c's `free` is a no-op, so
///   a hostile body can make unpack allocate at most what it would have with
///   malloc (bounded by the frame size cap, enforced before decoding).
struct WireArena {
    private struct State {
        var cursor: UnsafeMutableRawPointer
        var end: UnsafeMutableRawPointer
        /// Heap blocks, linked through their first word (`blockHeaderBytes`).
        var heapBlocks: UnsafeMutableRawPointer?
        /// Sum of heap block sizes so far, in bytes; the next block is at least this big.
        var heapBytes: Int
    }

    /// Bytes of the first block, on the stack: fits a typical request or response
    /// with its strings (an Enqueue needs about 500). Up to 1 KiB the stdlib puts
    /// it on the stack without checking the stack bounds; 4 KiB measured slower
    /// for small frames (the check) and no faster for larger ones.
    static let inlineBytes = 1024
    /// Smallest heap block, in bytes: big enough that a 1000-run batch grows
    /// through only a handful of doublings.
    static let minimumHeapBlockBytes = 16 * 1024
    /// A heap block starts with the pointer to the previous one, padded to keep
    /// the payload 16-byte aligned.
    private static let blockHeaderBytes = 16
    /// malloc's guarantee on x86_64 and arm64; what protobuf-c expects of `alloc`.
    private static let maxAlignment = 16

    private let state: UnsafeMutablePointer<State>

    /// Runs `body` with a fresh arena and releases all of it afterwards.
    static func with<R>(_ body: (WireArena) -> R) -> R {
        withUnsafeTemporaryAllocation(byteCount: inlineBytes, alignment: maxAlignment) { buffer in
            let base = buffer.baseAddress!
            let state = base.bindMemory(to: State.self, capacity: 1)
            let headerBytes = (MemoryLayout<State>.stride + maxAlignment - 1) & ~(maxAlignment - 1)
            state.initialize(to: State(cursor: base + headerBytes, end: base + buffer.count, heapBlocks: nil, heapBytes: 0))
            let arena = WireArena(state: state)
            defer {
                var block = state.pointee.heapBlocks
                while let current = block {
                    block = current.load(as: UnsafeMutableRawPointer?.self)
                    current.deallocate()
                }
                state.deinitialize(count: 1)
            }
            return body(arena)
        }
    }

    /// Uninitialized memory; never fails (a failed heap allocation traps, as any
    /// Swift allocation does).
    func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let aligned = state.pointee.cursor.alignedUp(toMultipleOf: alignment)
        if byteCount <= state.pointee.end - aligned {
            state.pointee.cursor = aligned + byteCount
            return aligned
        }
        return allocateInNewBlock(byteCount: byteCount, alignment: alignment)
    }

    private func allocateInNewBlock(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let needed = Self.blockHeaderBytes + byteCount + alignment
        let size = max(needed, Self.minimumHeapBlockBytes, state.pointee.heapBytes)
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: Self.maxAlignment)
        block.storeBytes(of: state.pointee.heapBlocks, as: UnsafeMutableRawPointer?.self)
        state.pointee.heapBlocks = block
        state.pointee.heapBytes += size
        let aligned = (block + Self.blockHeaderBytes).alignedUp(toMultipleOf: alignment)
        state.pointee.cursor = aligned + byteCount
        state.pointee.end = block + size
        return aligned
    }

    /// A C struct, initialized by its protoc-c `*_init` function.
    func new<T>(_ type: T.Type, _ initialize: (UnsafeMutablePointer<T>?) -> Void) -> UnsafeMutablePointer<T> {
        let raw = allocate(byteCount: MemoryLayout<T>.stride, alignment: MemoryLayout<T>.alignment)
        let pointer = raw.bindMemory(to: T.self, capacity: 1)
        initialize(pointer)
        return pointer
    }

    /// An array of `count` struct pointers (a repeated message field), all nil.
    func pointerArray<T>(of type: T.Type, count: Int) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?> {
        let raw = allocate(
            byteCount: MemoryLayout<UnsafeMutablePointer<T>?>.stride * count,
            alignment: MemoryLayout<UnsafeMutablePointer<T>?>.alignment
        )
        let array = raw.bindMemory(to: UnsafeMutablePointer<T>?.self, capacity: count)
        array.initialize(repeating: nil, count: count)
        return array
    }

    /// A NUL-terminated copy of `string`'s UTF-8. An embedded NUL ends the
    /// string on the C side (protobuf-c uses strlen), which truncates, never crashes.
    func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = string.utf8
        let count = utf8.count
        let raw = allocate(byteCount: count + 1, alignment: 1)
        let copied: Void? = utf8.withContiguousStorageIfAvailable { source in
            if let base = source.baseAddress { raw.copyMemory(from: base, byteCount: source.count) }
        }
        if copied == nil {
            var offset = 0
            for byte in utf8 {
                raw.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
                offset += 1
            }
        }
        raw.storeBytes(of: 0, toByteOffset: count, as: UInt8.self)
        return raw.bindMemory(to: CChar.self, capacity: count + 1)
    }

    /// A `bytes` field value copied into the arena; `{0, NULL}` when empty.
    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        guard !bytes.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let raw = allocate(byteCount: bytes.count, alignment: 1)
        bytes.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return ProtobufCBinaryData(len: bytes.count, data: raw.bindMemory(to: UInt8.self, capacity: bytes.count))
    }

    /// An allocator for `*_unpack` that allocates from this arena and never frees;
    /// the arena's release frees the whole unpacked tree, so `*_free_unpacked` is
    /// not called on messages unpacked with it.
    var protobufAllocator: ProtobufCAllocator {
        ProtobufCAllocator(
            alloc: { data, size in
                // protobuf-c never passes a nil `allocator_data` back; size 0 still
                // gets a distinct, valid pointer.
                WireArena(state: data!.assumingMemoryBound(to: State.self))
                    .allocate(byteCount: max(size, 1), alignment: WireArena.maxAlignment)
            },
            free: { _, _ in },
            allocator_data: UnsafeMutableRawPointer(state)
        )
    }
}
