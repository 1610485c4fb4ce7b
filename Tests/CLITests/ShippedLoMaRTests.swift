import XCTest
import Foundation
import Tensor
import ViT
import ImageKit
import Objectives
import TestSupport

/// The shipped LoMaR model (its 28 px Fashion-MNIST pretraining, exported in fp16), served from `models/`
/// by the real `bootmae-serve` on the committed Fashion-MNIST test images: an RPE-only encoder (no
/// absolute positions, iRPE on the keys in every layer) whose served embeddings are those of the same
/// directory loaded in this process, and whose reconstructions are the in-process window-by-window
/// predictions on the served masks, the same on every call and better than the guess that needs no model.
final class ShippedLoMaRTests: ShippedServerTestCase {
    static let model = "lomar-vit-tiny-fmnist"
    static var directory: URL { ShippedServer.modelsDirectory.appendingPathComponent(model) }

    /// The directory loaded in this process through the training code (plain weights, no packing).
    static func network() throws -> PretrainingNetwork { try PretrainingDirectory.load(directory) }

    /// Listed as a pixel model with LoMaR's own default masks; its config says what makes it LoMaR.
    func testListedAsAnRPEOnlyPixelModel() throws {
        let cards = try shipped.modelCards()
        let card = try XCTUnwrap(cards[Self.model], "served: \(cards.keys.sorted())")
        XCTAssertEqual(Set(try XCTUnwrap(card["capabilities"] as? [String])), ["embed", "reconstruct"])
        let reconstruction = try XCTUnwrap(card["reconstruction"] as? [String: Any])
        XCTAssertEqual(reconstruction["default_masking"] as? String, "random")
        XCTAssertEqual(reconstruction["patches"] as? Int, 49)

        let config = try Self.network().config
        XCTAssertEqual(config.objective, "lomar")
        XCTAssertEqual(config.encoder.relativePosition, .irpeProductK)
        XCTAssertEqual(config.encoder.posEmbed, .absent)
    }

    /// 128-d, finite, the same alone as in a batch, and within 1e-4 (relative) of the directory's
    /// encoder run in this process on the same model input: the server's packed fp32 weights and its
    /// relative-position bias, computed once at load for the 7 × 7 grid, against the training code's.
    func testEmbeddingsAreTheInProcessEncoders() throws {
        let batch = try shipped.call("/v1/embeddings", ["model": Self.model, "input": shipped.base64Images])
        let alone = try shipped.call("/v1/embeddings", ["model": Self.model, "input": [shipped.base64Images[6]]])
        XCTAssertEqual(batch.status, 200, "\(batch.json)")
        XCTAssertEqual(alone.status, 200, "\(alone.json)")
        let served = ShippedServer.embeddings(batch.json)
        XCTAssertEqual(served.count, shipped.images.count)
        XCTAssertTrue(served.allSatisfy { $0.count == 128 && $0.allSatisfy(\.isFinite) })
        XCTAssertEqual(ShippedServer.embeddings(alone.json).first, served[6])
        XCTAssertNotEqual(served[0], served[1])

        let network = try Self.network()
        let expected = network.encoder.embed(try ShippedServer.modelInput(shipped.images, config: network.config.encoder))
        let got = Tensor(shape: [served.count, 128], data: served.flatMap { $0 })
        XCTAssertLessThanOrEqual(relativeError(got, expected), 1e-4)
    }

    /// Reconstructions with the model's default masks (random, 40 of 49 patches: N − ⌊N · 0.2⌋) and
    /// with MAE's share (37), seeds 0..<10: the same on a second call; each masked patch's error is the
    /// in-process reconstruction's on the served mask (LoMaR's head predicts each window of 4 × 4 patches
    /// that tiles the grid, `LoMaRReconstruction.swift`); `errors` is null exactly at the visible patches.
    /// Against the patch-mean guess (each masked patch's true mean, which `stats: patch` also gives
    /// the model): measured at export (13 epochs, step 3,042; AMD EPYC Zen 3) 0.64 of its error at 40 masked and 0.60 at 37.
    func testReconstructionsAreTheInProcessWindowPredictionsAndBeatThePatchMean() throws {
        let network = try Self.network()
        let input = try ShippedServer.modelInput(shipped.images, config: network.config.encoder)
        let plane = input.count / shipped.images.count
        for (maskRatio, masked, bound) in [(nil, 40, 0.75), (0.75, 37, 0.72)] as [(Double?, Int, Double)] {
            var (modelError, guessError) = (0.0, 0.0)
            for (index, data) in shipped.images.enumerated() {
                let file = shipped.expectations.images[index].file
                var body: [String: Any] = ["model": Self.model, "input": shipped.base64Images[index], "seed": index]
                if let maskRatio { body["mask_ratio"] = maskRatio }
                let first = try shipped.call("/v1/reconstructions", body)
                let second = try shipped.call("/v1/reconstructions", body)
                XCTAssertEqual(first.status, 200, "\(first.json)")
                XCTAssertEqual(second.status, 200)
                let mask = try XCTUnwrap(first.json["mask"] as? [Int], file)
                let mse = try XCTUnwrap((first.json["mse"] as? NSNumber)?.doubleValue, file)
                XCTAssertEqual(mask, second.json["mask"] as? [Int], file)
                XCTAssertEqual(first.json["mse"] as? NSNumber, second.json["mse"] as? NSNumber, file)
                XCTAssertEqual(first.json["images"] as? [String: String], second.json["images"] as? [String: String], file)
                XCTAssertEqual(first.json["masking"] as? String, "random", file)
                XCTAssertEqual(mask.count, masked, file)
                XCTAssertTrue(mse.isFinite, file)
                // Scored for being out of distribution by the calibrated model of the same input (the default
                // BootMAE export), in its feature space too.
                let ood = try XCTUnwrap(first.json["ood"] as? [String: Any], file)
                XCTAssertEqual(ood["reference_model"] as? String, ShippedModelTests.pretrained, file)
                XCTAssertNotNil(ood["feature_space"] as? [String: Any], file)

                let errors = try XCTUnwrap(first.json["errors"] as? [Any], file)
                XCTAssertEqual(errors.count, 49, file)
                let visible = (0..<49).filter { !mask.contains($0) }
                XCTAssertEqual((0..<49).filter { errors[$0] is NSNull }, visible, file)

                // The same image and mask through the training code's reconstruction.
                let image = Tensor(shape: [1] + Array(input.shape.dropFirst()), data: Array(input.data[(index * plane)..<((index + 1) * plane)]))
                let r = network.reconstruct(image, plan: MaskPlan(order: [visible + mask], visible: visible.count))
                for patch in mask {
                    var se = 0.0
                    for k in 0..<r.patchDim {
                        let d = Double(r.pixels.data[patch * r.patchDim + k] - r.truth.data[patch * r.patchDim + k])
                        se += d * d
                    }
                    let served = try XCTUnwrap((errors[patch] as? NSNumber)?.doubleValue, "\(file) patch \(patch)")
                    XCTAssertEqual(served, se / Double(r.patchDim), accuracy: 1e-5, "\(file) patch \(patch): served vs in-process")
                }

                modelError += mse
                guessError += ShippedModelTests.patchMeanError(try ImageDecoder.decode(data), patches: mask, patchSize: 4)
            }
            XCTAssertLessThan(modelError / guessError, bound, "\(masked) masked: error relative to the patch-mean guess")
        }
    }
}
