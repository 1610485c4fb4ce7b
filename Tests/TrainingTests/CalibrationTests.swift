import XCTest
import Foundation
import Tensor
import ViT
import Training
import Objectives

extension TrainerTests {
    /// `bootmae-train calibrate`'s errors: the first N test images measured with the protocol the
    /// server scores requests with (the objective's masking and masked count, one mask per seed),
    /// sorted; how the images are batched changes them only by float rounding (GEMM sizes).
    func testErrorCalibrationMeasuresTheFirstImagesWithTheServedProtocol() throws {
        var rng = SeededRandom(seed: 5)
        let network = PretrainingNetwork(config: Self.bootmae)
        network.objective.initialize(rng: &rng)
        let test = SubsetDataset(try Datasets.open(Self.fashionMNIST, split: .test), count: 30)
        let calibration = try Evaluation.errorCalibration(network, dataset: test, describing: "fmnist test", maxImages: 25,
                                                          batchSize: 10, seeds: 2, progress: nil)
        XCTAssertEqual(calibration.errors.count, 25)
        XCTAssertEqual(calibration.errors, calibration.errors.sorted())
        XCTAssertEqual(calibration.measure, ReconstructionErrorProtocol(masking: .block, maskedPatches: network.reconstructor!.maskedCount, seeds: [0, 1]))
        XCTAssertEqual(calibration.dataset, "fmnist test (first 25 images)")
        let c = Self.encoder
        let loader = BatchLoader(dataset: test, batchSize: 25, shuffle: false, dropLast: false, seed: 0, epoch: 0,
                                 channels: 1, imageSize: c.imgSize, mean: c.mean, std: c.std, augment: nil)
        let batch = try XCTUnwrap(try loader.next())
        let direct = network.maskedPatchErrors(batch.images, protocol: calibration.measure).sorted()
        for (a, b) in zip(direct, calibration.errors) { XCTAssertEqual(a, b, accuracy: 1e-5 * b) }
        // Written and read back as the server reads it.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("calibration-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try JSONEncoder().encode(calibration).write(to: dir.appendingPathComponent(ReconstructionErrorCalibration.fileName))
        let read = try XCTUnwrap(try ReconstructionErrorCalibration.read(dir))
        XCTAssertEqual(read.errors, calibration.errors)
        XCTAssertEqual(read.percentile(of: calibration.errors[12]), 50)
    }
}
