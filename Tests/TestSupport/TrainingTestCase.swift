import XCTest
import Foundation
import Tensor

/// A test case that trains on Fashion-MNIST: it needs Debian's dataset (scripts/setup.sh installs
/// it; without it the tests fail loudly), two compute threads, and a scratch folder removed afterwards.
open class TrainingTestCase: XCTestCase {
    public static let fashionMNIST = "/usr/share/datasets/fashion-mnist"
    public var scratch: URL!

    override open func setUpWithError() throws {
        XCTAssertTrue(FileManager.default.fileExists(atPath: Self.fashionMNIST), "run scripts/setup.sh: Fashion-MNIST is missing")
        TensorRuntime.configure(threads: 2)
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("\(type(of: self))-\(UUID())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override open func tearDownWithError() throws {
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
    }
}
