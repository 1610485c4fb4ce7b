import Foundation
import XCTest
@testable import Training

/// Loader throughput on Fashion-MNIST. Skipped unless BOOTMAE_BENCH=1; run it in release:
/// `BOOTMAE_BENCH=1 swift test -c release --filter LoaderThroughputTests`.
final class LoaderThroughputTests: XCTestCase {
    func testFashionMNISTThroughput() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["BOOTMAE_BENCH"] == "1", "set BOOTMAE_BENCH=1 to run")
        var clock = ContinuousClock.now
        let data = try Datasets.open("/usr/share/datasets/fashion-mnist", split: .train)
        print("open train split (gunzip 60000 images): \(String(format: "%.3f", (ContinuousClock.now - clock).seconds)) s")

        for augment in [Augment(size: 32), nil] {
            for workers in [1, 2] {
                var rates: [Double] = []
                for _ in 0..<3 {
                    let loader = BatchLoader(dataset: data, batchSize: 256, shuffle: true, dropLast: true, seed: 1, epoch: 0,
                                             channels: 1, imageSize: 32, mean: [0.2860], std: [0.3530], augment: augment,
                                             prefetch: 2, workers: workers)
                    clock = ContinuousClock.now
                    var images = 0
                    while let batch = try loader.next() {
                        images += batch.count
                        if images >= 30_720 { break }
                    }
                    rates.append(Double(images) / (ContinuousClock.now - clock).seconds)
                }
                rates.sort()
                print("\(augment == nil ? "eval (resize 28→32)" : "train (RandomResizedCrop 32 + flip)"), workers \(workers): "
                      + "median \(Int(rates[1])) img/s (runs: \(rates.map { Int($0) }))")
            }
        }
    }
}
