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

    /// `calibrate`'s feature bank and distances: the bank is the first N training images' embeddings,
    /// normalised and rounded to fp16; each held-out distance is the k-th smallest Euclidean distance
    /// from a test image's normalised embedding to the stored rows, recomputed here in Double from
    /// the encoder's own embeddings. The file round-trips the rows exactly.
    func testFeatureCalibrationIsTheKthNearestDistanceToTheStoredBank() throws {
        var rng = SeededRandom(seed: 6)
        let network = PretrainingNetwork(config: Self.bootmae)
        network.objective.initialize(rng: &rng)
        let encoder = network.encoder
        let train = SubsetDataset(try Datasets.open(Self.fashionMNIST, split: .train), count: 30)
        let test = SubsetDataset(try Datasets.open(Self.fashionMNIST, split: .test), count: 30)
        let (bank, calibration) = try Evaluation.featureCalibration(encoder, bank: train, describingBank: "fmnist train", heldOut: test,
                                                                   describing: "fmnist test", bankImages: 20, heldOutImages: 9, k: 3,
                                                                   batchSize: 7, progress: nil)
        XCTAssertEqual(bank.count, 20)
        XCTAssertEqual(bank.dim, Self.encoder.embedDim)
        XCTAssertEqual(calibration.distances.count, 9)
        XCTAssertEqual(calibration.k, 3)
        XCTAssertEqual(calibration.pooling, Self.encoder.globalPool.rawValue)
        XCTAssertEqual(calibration.bankDataset, "fmnist train (first 20 images)")
        XCTAssertEqual(calibration.dataset, "fmnist test (first 9 images)")

        let c = Self.encoder
        func embeddings(_ dataset: any ImageDataset, _ n: Int) throws -> Tensor {
            let loader = BatchLoader(dataset: dataset, batchSize: n, shuffle: false, dropLast: false, seed: 0, epoch: 0,
                                     channels: 1, imageSize: c.imgSize, mean: c.mean, std: c.std, augment: nil)
            return encoder.embed(try XCTUnwrap(try loader.next()).images)
        }
        let d = c.embedDim
        let rows = try embeddings(train, 20), queries = try embeddings(test, 9)
        func unit(_ t: Tensor, _ i: Int) -> [Double] {
            let v = (0..<d).map { Double(t.data[i * d + $0]) }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return v.map { $0 / norm }
        }
        let stored = (0..<20).map { unit(rows, $0).map { Double(Float16(Float($0))) } }
        for i in 0..<20 { for j in 0..<d { XCTAssertEqual(Double(bank.rows[i * d + j]), stored[i][j], accuracy: 1e-3) } }
        // Distances from the rows as stored (an fp16 rounding of a value computed in Double may differ by one step).
        let storedRows = (0..<20).map { i in (0..<d).map { Double(bank.rows[i * d + $0]) } }
        let expected = (0..<9).map { q -> Double in
            let u = unit(queries, q)
            let all = storedRows.map { row in zip(u, row).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() }.sorted()
            return all[2]
        }.sorted()
        for (a, b) in zip(calibration.distances, expected) { XCTAssertEqual(a, b, accuracy: 1e-4) }

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("feature-bank-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try bank.write(to: dir)
        XCTAssertEqual(try XCTUnwrap(try FeatureBank.read(dir)).rows, bank.rows)
        // Two orthogonal unit rows and a query between them: distances √(2 − √2) to both (closed form).
        let two = FeatureBank(embeddings: [2, 0, 0, 3], dim: 2)
        XCTAssertEqual(two.kthNearestDistance([5, 5], k: 2), (2 - 2.0.squareRoot()).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(two.kthNearestDistance([0, 1], k: 1), 0)
        XCTAssertEqual(two.kthNearestDistance([0, 1], k: 2), 2.0.squareRoot(), accuracy: 1e-6)
    }
}
