import Foundation
import XCTest
@testable import ImageKit

/// Timings for the serving path; only with IMAGEKIT_BENCH=1 and meaningful in release:
/// IMAGEKIT_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter ImageKitTests.PerformanceTests
final class PerformanceTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["IMAGEKIT_BENCH"] == "1", "set IMAGEKIT_BENCH=1")
    }

    /// Median wall time of `body` in milliseconds.
    private func median(_ runs: Int = 41, _ body: () throws -> Void) rethrows -> Double {
        var times = [Double]()
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return times.sorted()[runs / 2]
    }

    func testServingPathTimings() throws {
        let jpeg = try Fixtures.bytes("photo_512x384.jpg")
        let photo = try ImageDecoder.decode(jpeg)
        let pre = ImagePreprocessor(imageSize: 224, channels: 3, mean: [0.485, 0.456, 0.406],
                                    std: [0.229, 0.224, 0.225], cropPct: 0.875)
        let small = try ImageDecoder.decode(Fixtures.bytes("gray28.png"))
        let pre32 = ImagePreprocessor(imageSize: 32, channels: 1, mean: [0.286], std: [0.353])
        var sink = 0
        let decode = try median { sink &+= try ImageDecoder.decode(jpeg).width }
        let resize = median { sink &+= photo.resized(width: 341, height: 256).width }
        let tensor = median { sink &+= pre.tensorCHW(photo).count }
        let whole = try median { sink &+= pre.tensorCHW(try ImageDecoder.decode(jpeg)).count }
        let tiny = try median(201) { sink &+= pre32.tensorCHW(try ImageDecoder.decode(PNGEncoder.encode(small))).count }
        print(String(format: "512x384 JPEG decode %.3f ms | resize to 341x256 %.3f ms | preprocess 224 %.3f ms | "
                     + "decode+preprocess %.3f ms | 28px PNG encode+decode+preprocess 32 %.4f ms (sink %d)",
                     decode, resize, tensor, whole, tiny, sink))
    }
}
