import XCTest
import Tensor

/// The live-heap figure the soak's leak check reads: a block counts while allocated and stops
/// counting when freed (the allocator may keep the memory, which is what RSS would still show).
final class HeapUsageTests: XCTestCase {
    func testCountsABlockWhileItIsAllocated() throws {
        #if os(Linux)
        let size = 8 << 20
        let before = try XCTUnwrap(HeapUsage.inUseBytes())
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        block.initializeMemory(as: UInt8.self, repeating: 1, count: size)
        let during = try XCTUnwrap(HeapUsage.inUseBytes())
        block.deallocate()
        let after = try XCTUnwrap(HeapUsage.inUseBytes())
        // Chunk headers and page rounding, and whatever else the process allocates meanwhile.
        XCTAssertEqual(during - before, Double(size), accuracy: 64 * 1024)
        XCTAssertEqual(during - after, Double(size), accuracy: 64 * 1024)
        #else
        throw XCTSkip("mallinfo2 is glibc's")
        #endif
    }
}
