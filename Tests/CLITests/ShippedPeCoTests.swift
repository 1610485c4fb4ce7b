import XCTest
import Foundation
import Tensor
import ImageKit
import Objectives
import TestSupport

/// The shipped PeCo pair, served from `models/` by the real `bootmae-serve` (as ShippedModelTests
/// serves the BootMAE models) on the committed Fashion-MNIST test images: the tokenizer's code grids
/// are those of the tokenizer loaded in this process, its decodings stay above the PSNR recorded at
/// export (Tests/Fixtures/fmnist/peco-expected.json), and the stage-2 model reconstructs through it,
/// deterministically, better than the guesses that need no model.
final class ShippedPeCoTests: ShippedServerTestCase {
    static let tokenizer = "peco-tokenizer-vit-tiny-fmnist"
    static let stage2 = "peco-vit-tiny-fmnist"

    /// peco-expected.json: what the tokenizer's decodings measured when it was exported.
    struct Expectations: Decodable {
        struct PSNR: Decodable {
            let measuredMean: Double
            let measuredMin: Double
            let margin: Double
            var meanFloor: Double { measuredMean - margin }
            var minFloor: Double { measuredMin - margin }

            enum CodingKeys: String, CodingKey { case measuredMean = "measured_mean", measuredMin = "measured_min", margin }
        }
        let tokenizer: String
        let decodePSNRdB: PSNR

        enum CodingKeys: String, CodingKey { case tokenizer, decodePSNRdB = "decode_psnr_db" }
    }

    /// The served code grids of `inputs` (base64 images), one request.
    func servedCodes(_ inputs: [String]) throws -> [[Int]] {
        let reply = try shipped.call("/v1/tokens", ["model": Self.tokenizer, "input": inputs])
        XCTAssertEqual(reply.status, 200, "\(reply.json)")
        return try XCTUnwrap(reply.json["data"] as? [[String: Any]]).map { try XCTUnwrap($0["codes"] as? [Int]) }
    }

    /// A model's config.json in `models/`.
    static func config(_ model: String) throws -> [String: Any] {
        let url = ShippedServer.modelsDirectory.appendingPathComponent(model).appendingPathComponent("config.json")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// Both are listed; the stage-2 model reconstructs because the very tokenizer export it was trained
    /// on is served beside it (a re-export with other weights shows up as `tokenizer_mismatch` here).
    func testModelsListThePairAndTheStage2ModelFindsItsTokenizer() throws {
        let cards = try shipped.modelCards()
        let stage2 = try XCTUnwrap(cards[Self.stage2], "served: \(cards.keys.sorted())")
        let tokenizer = try XCTUnwrap(cards[Self.tokenizer], "served: \(cards.keys.sorted())")

        XCTAssertEqual(Set(try XCTUnwrap(stage2["capabilities"] as? [String])), ["embed", "reconstruct"])
        let requires = try XCTUnwrap(stage2["requires_tokenizer"] as? [String: Any])
        XCTAssertEqual(requires["id"] as? String, Self.tokenizer)
        XCTAssertEqual(requires["loaded"] as? Bool, true)
        XCTAssertNil(requires["problem"], "\(requires)")
        let reconstruction = try XCTUnwrap(stage2["reconstruction"] as? [String: Any])
        XCTAssertEqual(reconstruction["default_masking"] as? String, "block")
        XCTAssertEqual(reconstruction["patches"] as? Int, 49)
        // The hash the stage-2 export recorded is that of the served tokenizer's weights.
        XCTAssertEqual(try Self.config(Self.stage2)["tokenizer_sha256"] as? String, tokenizer["weights_sha256"] as? String)

        XCTAssertEqual(Set(try XCTUnwrap(tokenizer["capabilities"] as? [String])), ["embed", "tokenize"])
        let grid = try XCTUnwrap(tokenizer["tokenizer"] as? [String: Any])
        XCTAssertEqual(grid["codebook_size"] as? Int, 512)
        XCTAssertEqual(grid["grid"] as? Int, 7)
        XCTAssertEqual((tokenizer["inference"] as? [String: Any])?["precision"] as? String, "fp32")
    }

    /// 7 × 7 codes of 512 per image, the same alone as in a batch, and the same as the tokenizer's
    /// own `codes` computed in this process from its directory (plain weights, the training code's
    /// inference path: not the server's packed GEMMs) on the same preprocessed input.
    func testTokensAreTheTokenizersOwnCodes() throws {
        let batch = try servedCodes(shipped.base64Images)
        XCTAssertEqual(batch.count, shipped.images.count)
        for (codes, image) in zip(batch, shipped.expectations.images) {
            XCTAssertEqual(codes.count, 49, image.file)
            XCTAssertTrue(codes.allSatisfy { (0..<512).contains($0) }, image.file)
        }
        for (index, input) in shipped.base64Images.enumerated() {
            XCTAssertEqual(try servedCodes([input]), [batch[index]], "\(shipped.expectations.images[index].file): alone vs in a batch")
        }
        let reply = try shipped.call("/v1/tokens", ["model": Self.tokenizer, "input": shipped.base64Images[0]])
        XCTAssertEqual(reply.json["grid"] as? Int, 7)
        XCTAssertEqual(reply.json["codebook_size"] as? Int, 512)

        let reference = try PeCoTokenizer.loadFrozen(ShippedServer.modelsDirectory.appendingPathComponent(Self.tokenizer))
        let own = reference.codes(try ShippedServer.modelInput(shipped.images, config: reference.encoder.config))
        for (index, image) in shipped.expectations.images.enumerated() {
            XCTAssertEqual(batch[index], own[index], "\(image.file): served vs in-process codes")
        }
    }

    /// `decode=true` (JSON): each image's PSNR is that of the in-process tokenizer's decoding of the
    /// served codes, and it stays above the floors recorded at export (peco-expected.json).
    func testDecodedTokensStayAboveTheRecordedPSNR() throws {
        let expected = try JSONDecoder().decode(Expectations.self, from: Data(contentsOf: Fixtures.url("fmnist/peco-expected.json")))
        XCTAssertEqual(expected.tokenizer, Self.tokenizer)
        let reply = try shipped.call("/v1/tokens", ["model": Self.tokenizer, "input": shipped.base64Images, "decode": true])
        XCTAssertEqual(reply.status, 200, "\(reply.json)")
        let data = try XCTUnwrap(reply.json["data"] as? [[String: Any]])
        XCTAssertEqual(data.count, shipped.images.count)

        let reference = try PeCoTokenizer.loadFrozen(ShippedServer.modelsDirectory.appendingPathComponent(Self.tokenizer))
        let input = try ShippedServer.modelInput(shipped.images, config: reference.encoder.config)
        let codes = try data.map { try XCTUnwrap($0["codes"] as? [Int]) }
        let decoded = reference.decode(codes)
        let std = Double(reference.encoder.config.std[0])
        let plane = input.count / codes.count
        var psnrs: [Double] = []
        for (index, item) in data.enumerated() {
            let file = shipped.expectations.images[index].file
            let psnr = try XCTUnwrap(item["psnr"] as? Double, file)
            XCTAssertNotNil(item["decoded"] as? String, file)
            // PSNR against the model input in [0, 1] pixel units: normalized differences times std.
            var se = 0.0
            for i in (index * plane)..<((index + 1) * plane) {
                let d = Double(decoded.data[i] - input.data[i]) * std
                se += d * d
            }
            XCTAssertEqual(psnr, 10 * log10(Double(plane) / se), accuracy: 0.01, "\(file): served vs in-process decoding")
            XCTAssertGreaterThanOrEqual(psnr, expected.decodePSNRdB.minFloor, file)
            psnrs.append(psnr)
        }
        let mean = psnrs.reduce(0, +) / Double(psnrs.count)
        XCTAssertGreaterThanOrEqual(mean, expected.decodePSNRdB.meanFloor, "mean decode PSNR over the ten images (each: \(psnrs))")
    }

    /// Reconstructions with the model's own masks (its training masks: BEiT blocks of
    /// `num_mask_patches`), seeds 0..<10: 200 and the same on a second call; the decoded grid holds the
    /// tokenizer's codes at the visible patches and predictions at the masked ones; `errors` is null
    /// exactly at the visible patches; `stats` is null (a tokenizer decodes pixels, no statistics).
    ///
    /// What it is measured against (Zen 4, at export): predictions hit the tokenizer's code at 72
    /// of the 200 masked patches (36%), where the most frequent visible code hits 2 (1%). The masked
    /// pixels' error is below guessing the visible pixels' mean on every image (0.21 of it overall),
    /// and below the patch-mean guess BootMAE's test uses only overall (0.93 of it): the pullover,
    /// coat, sandal and shirt lose to it, and at mask ratio 0.75 (BootMAE's test) the model's error
    /// is 2.6× that guess. That guess knows every masked patch's true mean, which BootMAE's `stats:
    /// patch` gives its decoder but a tokenizer's decoding never sees; stage 2's 13.97 dB over the
    /// test split (block masks) is below BootMAE's pixel decoder, so no per-image claim is made.
    func testReconstructionsDecodePredictedCodesAndBeatTheGuessesThatNeedNoModel() throws {
        let masked = try XCTUnwrap(Self.config(Self.stage2)["num_mask_patches"] as? Int)
        let tokens = try servedCodes(shipped.base64Images)
        var (modelError, visibleMeanError, patchMeanError) = (0.0, 0.0, 0.0)
        var (hits, majorityHits, total) = (0, 0, 0)
        for (index, data) in shipped.images.enumerated() {
            let file = shipped.expectations.images[index].file
            let body: [String: Any] = ["model": Self.stage2, "input": shipped.base64Images[index], "seed": index]
            let first = try shipped.call("/v1/reconstructions", body)
            let second = try shipped.call("/v1/reconstructions", body)
            XCTAssertEqual(first.status, 200, "\(first.json)")
            XCTAssertEqual(second.status, 200)
            let mask = try XCTUnwrap(first.json["mask"] as? [Int], file)
            let codes = try XCTUnwrap(first.json["codes"] as? [Int], file)
            let mse = try XCTUnwrap((first.json["mse"] as? NSNumber)?.doubleValue, file)
            XCTAssertEqual(mask, second.json["mask"] as? [Int], file)
            XCTAssertEqual(codes, second.json["codes"] as? [Int], file)
            XCTAssertEqual(first.json["mse"] as? NSNumber, second.json["mse"] as? NSNumber, file)
            XCTAssertEqual(first.json["images"] as? [String: String], second.json["images"] as? [String: String], file)

            XCTAssertEqual(first.json["masking"] as? String, "block", file)
            XCTAssertTrue(first.json["stats"] is NSNull, file)
            XCTAssertEqual(mask.count, masked, file)
            XCTAssertEqual(mask, mask.sorted(), file)
            XCTAssertEqual(first.json["seed"] as? Int, index, file)
            XCTAssertEqual([first.json["grid"] as? Int, first.json["patches"] as? Int], [7, 49], file)
            XCTAssertEqual(try XCTUnwrap(first.json["mask_ratio"] as? Double, file), Double(masked) / 49, accuracy: 1e-9, file)
            XCTAssertEqual(codes.count, 49, file)
            XCTAssertTrue(codes.allSatisfy { (0..<512).contains($0) }, file)
            let visible = (0..<49).filter { !mask.contains($0) }
            XCTAssertEqual(visible.map { codes[$0] }, visible.map { tokens[index][$0] }, "\(file): the tokenizer's codes at the visible patches")
            let errors = try XCTUnwrap(first.json["errors"] as? [Any], file)
            XCTAssertEqual(errors.count, 49, file)
            XCTAssertEqual((0..<49).filter { errors[$0] is NSNull }, visible, file)
            let maskedErrors = try mask.map { try XCTUnwrap((errors[$0] as? NSNumber)?.doubleValue, file) }
            XCTAssertEqual(maskedErrors.reduce(0, +) / Double(mask.count), mse, accuracy: 1e-6 * max(mse, 1), file)
            XCTAssertTrue(mse.isFinite, file)

            let image = try ImageDecoder.decode(data)
            let guess = Self.visibleMeanError(image, patches: mask, patchSize: 4)
            XCTAssertLessThan(mse, guess, "\(file): against the visible pixels' mean")
            modelError += mse
            visibleMeanError += guess
            patchMeanError += ShippedModelTests.patchMeanError(image, patches: mask, patchSize: 4)

            hits += mask.filter { codes[$0] == tokens[index][$0] }.count
            let counts = Dictionary(visible.map { (tokens[index][$0], 1) }, uniquingKeysWith: +)
            let majority = try XCTUnwrap(counts.max { ($0.value, $1.key) < ($1.value, $0.key) }).key
            majorityHits += mask.filter { tokens[index][$0] == majority }.count
            total += mask.count
        }
        XCTAssertLessThan(modelError / visibleMeanError, 0.35, "error relative to the visible pixels' mean (0.21 at export)")
        XCTAssertLessThan(modelError / patchMeanError, 1, "error relative to each masked patch's true mean (0.93 at export)")
        XCTAssertGreaterThanOrEqual(Double(hits) / Double(total), 0.25, "masked patches predicted as the tokenizer codes them (0.36 at export)")
        XCTAssertGreaterThan(hits, 5 * majorityHits, "against the most frequent visible code at every masked patch")
    }

    /// The stage-2 encoder serves embeddings like any ViT: 128-d, finite, the same alone as in a batch.
    func testEmbeddingsAreFiniteAndTheSameAloneAsInABatch() throws {
        let batch = try shipped.call("/v1/embeddings", ["model": Self.stage2, "input": shipped.base64Images])
        let alone = try shipped.call("/v1/embeddings", ["model": Self.stage2, "input": [shipped.base64Images[4]]])
        XCTAssertEqual(batch.status, 200, "\(batch.json)")
        XCTAssertEqual(alone.status, 200)
        let all = ShippedServer.embeddings(batch.json)
        XCTAssertEqual(all.count, shipped.images.count)
        XCTAssertTrue(all.allSatisfy { $0.count == 128 && $0.allSatisfy(\.isFinite) })
        XCTAssertEqual(ShippedServer.embeddings(alone.json).first, all[4])
        XCTAssertNotEqual(all[0], all[1])
    }

    /// Mean squared difference of the listed patches' pixels (in [0, 1]) from the mean of all the
    /// other (visible) patches' pixels: the guess that needs neither a model nor the hidden pixels.
    static func visibleMeanError(_ image: Image, patches: [Int], patchSize p: Int) -> Double {
        let grid = image.width / p
        func pixels(_ patch: Int) -> [Double] {
            let (top, left) = ((patch / grid) * p, (patch % grid) * p)
            return (0..<(p * p)).map { Double(image.pixels[(top + $0 / p) * image.width + left + $0 % p]) / 255 }
        }
        let visible = (0..<(grid * grid)).filter { !patches.contains($0) }.flatMap(pixels)
        let mean = visible.reduce(0, +) / Double(visible.count)
        let hidden = patches.flatMap(pixels)
        return hidden.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(hidden.count)
    }
}
