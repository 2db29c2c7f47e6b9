import RunQueueWire
import Testing

@Suite struct FrameCodecTests {
    private func decodeAll(_ bytes: [UInt8], chunk: Int, limit: Int = 1 << 20) throws -> [[UInt8]] {
        var decoder = FrameDecoder(maxFrameBytes: limit)
        var frames: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            let end = min(i + chunk, bytes.count)
            try bytes[i..<end].withUnsafeBytes { chunkBytes in
                try decoder.feed(chunkBytes) { frames.append(Array($0)) }
            }
            i = end
        }
        return frames
    }

    @Test func encodesGoldenBytes() {
        #expect(FrameEncoder.frame([0x08, 0x05]) == [0, 0, 0, 2, 0x08, 0x05])
        #expect(FrameEncoder.frame(Array(repeating: 7, count: 0x0102_03)).prefix(4) == [0, 1, 2, 3])
    }

    @Test func decodesGoldenBytes() throws {
        let frames = try decodeAll([0, 0, 0, 1, 0xAA, 0, 0, 0, 3, 1, 2, 3], chunk: 100)
        #expect(frames == [[0xAA], [1, 2, 3]])
    }

    @Test func dripFeedAtEveryChunkSizeYieldsTheSameFrames() throws {
        let bodies: [[UInt8]] = [[1], Array(0..<200).map { UInt8($0) }, [0, 0, 0, 0], Array(repeating: 9, count: 1000)]
        var stream: [UInt8] = []
        for body in bodies { FrameEncoder.append(body: body, to: &stream) }
        for chunk in 1...stream.count {
            #expect(try decodeAll(stream, chunk: chunk) == bodies, "chunk size \(chunk)")
        }
    }

    @Test func refusesZeroLength() {
        #expect(throws: FrameError.emptyFrame) { try decodeAll([0, 0, 0, 0, 1], chunk: 5) }
    }

    @Test func refusesOversizeBeforeBufferingTheBody() throws {
        var decoder = FrameDecoder(maxFrameBytes: 16)
        var stream: [UInt8] = [0, 0, 0, 17]
        stream += Array(repeating: 1, count: 17)
        var delivered = 0
        // Header split over two chunks; the violation is known after byte 4,
        // with nothing of the body held.
        try stream[0..<2].withUnsafeBytes { try decoder.feed($0) { _ in delivered += 1 } }
        #expect(decoder.bufferedBytes == 2)
        #expect(throws: FrameError.frameTooLarge(length: 17, limit: 16)) {
            try stream[2...].withUnsafeBytes { try decoder.feed($0) { _ in delivered += 1 } }
        }
        #expect(decoder.bufferedBytes == 0)
        #expect(delivered == 0)
        // Stays failed.
        #expect(throws: FrameError.self) { try [UInt8]([0, 0, 0, 1, 1]).withUnsafeBytes { try decoder.feed($0) { _ in } } }
    }

    @Test func refusesAHugeAnnouncedLengthWithoutAllocating() {
        #expect(throws: FrameError.frameTooLarge(length: UInt32.max, limit: 1 << 20)) {
            try decodeAll([0xFF, 0xFF, 0xFF, 0xFF, 0], chunk: 5)
        }
    }

    @Test func acceptsAFrameOfExactlyTheLimit() throws {
        let body = Array(repeating: UInt8(3), count: 64)
        #expect(try decodeAll(FrameEncoder.frame(body), chunk: 7, limit: 64) == [body])
    }

    @Test func framesBeforeAViolationAreDelivered() {
        var decoder = FrameDecoder(maxFrameBytes: 8)
        var frames = 0
        #expect(throws: FrameError.self) {
            try [UInt8]([0, 0, 0, 1, 5, 0, 0, 0, 9]).withUnsafeBytes { try decoder.feed($0) { _ in frames += 1 } }
        }
        #expect(frames == 1)
    }
}
