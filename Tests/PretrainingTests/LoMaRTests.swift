import XCTest
import Foundation
import Tensor
import ViT
import Objectives
import Checkpoint
import TestSupport

/// LoMaR against the official model (tools/reference/make_lomar_fixtures.py ran junchen14/LoMaR
/// models_lomar.py on fixed images; its windows and masks are replayed here), and the closed-form
/// checks: window extraction, the zero-head loss, permutation equivariance.
final class LoMaRTests: XCTestCase {
    func assertClose(_ a: Tensor, _ b: Tensor, _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let e = relativeError(a, b)
        XCTAssertLessThanOrEqual(e, tol, "\(what): relative error \(e)", file: file, line: line)
    }

    func loadTiny() throws -> (LoMaR, SafeTensorsFile) {
        let network = try PretrainingDirectory.load(Fixtures.url("pretrain/lomar_tiny"))
        return (try XCTUnwrap(network.objective as? LoMaR, "not LoMaR"), try Fixtures.file("pretrain/lomar_tiny/io.safetensors"))
    }

    /// The official step's rows: (image, top, left) and masks as stored.
    func officialPlan(_ io: SafeTensorsFile, batch: Int, size: Int) throws -> LoMaRPlan {
        let images = try io.integers("row_image").values, tops = try io.integers("row_top").values
        let lefts = try io.integers("row_left").values
        let mask = try io.tensor("mask")
        let k2 = size * size
        return LoMaRPlan(batch: batch, size: size,
                         windows: images.indices.map { TokenWindow(image: images[$0], top: tops[$0], left: lefts[$0]) },
                         masks: images.indices.map { r in (0..<k2).map { mask.data[r * k2 + $0] == 1 } })
    }

    // MARK: Against the official model

    func testStepMatchesTheOfficialModel() throws {
        let (model, io) = try loadTiny()
        XCTAssertEqual(model.windowSize, 4)
        XCTAssertEqual(model.settings.windows, 4)
        XCTAssertNil(model.parameters["pos_embed"], "the official frozen table is ignored on loading")
        let images = try io.tensor("images")
        let plan = try officialPlan(io, batch: images.shape[0], size: 4)
        // The rows' patches are the official `ids_restore`: (top + i)·8 + left + j.
        let (_, patches) = try io.integers("row_patches")
        XCTAssertEqual(plan.windows.flatMap { w in (0..<4).flatMap { i in (0..<4).map { j in (w.top + i) * 8 + w.left + j } } }, patches)
        XCTAssertEqual(plan.maskedPerWindow, 12)

        model.parameters.zeroGrads()
        let out = model.step(images, plan: plan)
        let ref = try io.tensor("loss").data[0]
        XCTAssertLessThanOrEqual(abs(out.loss - ref) / ref, 1e-5, "loss \(out.loss) vs \(ref)")
        assertClose(out.target, try io.tensor("target"), 1e-5, "target")
        assertClose(out.prediction, try io.tensor("pred"), 1e-4, "pred")
        var checked = 0
        for (name, p) in model.parameters.entries where p.trainable {
            assertClose(p.grad, try io.tensor("grad." + name), 1e-4, "grad \(name)")
            checked += 1
        }
        XCTAssertEqual(checked, io.entries.keys.filter { $0.hasPrefix("grad.") }.count, "every official gradient checked")
        XCTAssertTrue(model.parameters.names.contains("blocks.1.attn.rpe_k.lookup_table_weight"))
    }

    /// The official rows of that step pair row r with image r mod 3 and window r mod 4.
    func testOfficialPairingReproducesTheOfficialRows() throws {
        let (_, io) = try loadTiny()
        let plan = try officialPlan(io, batch: 3, size: 4)
        var rng = SeededRandom(seed: 3)
        let drawn = LoMaRPlan.draw(batch: 3, grid: 8, size: 4, count: 4, masked: 12, pairing: .official, rng: &rng)
        XCTAssertEqual(drawn.windows.map(\.image), plan.windows.map(\.image))
        let windowOf = { (p: LoMaRPlan) in p.windows.map { w in p.windows.firstIndex { $0.top == w.top && $0.left == w.left }! } }
        XCTAssertEqual(windowOf(drawn), windowOf(plan), "row r holds window r mod 4 in both")
    }

    /// Which windows each image gets under each pairing (models_lomar.py `generate_window_patches`'s row order).
    func testWindowsPerImageUnderBothPairings() {
        func windowsPerImage(batch: Int, pairing: WindowPairing) -> [Int] {
            var rng = SeededRandom(seed: 11)
            let plan = LoMaRPlan.draw(batch: batch, grid: 14, size: 7, count: 4, masked: 39, pairing: pairing, rng: &rng)
            XCTAssertEqual(plan.windows.count, 4 * batch)
            return (0..<batch).map { n in Set(plan.windows.filter { $0.image == n }.map { [$0.top, $0.left] }).count }
        }
        XCTAssertEqual(windowsPerImage(batch: 8, pairing: .official), Array(repeating: 1, count: 8))
        XCTAssertEqual(windowsPerImage(batch: 6, pairing: .official), Array(repeating: 2, count: 6))
        XCTAssertEqual(windowsPerImage(batch: 7, pairing: .official), Array(repeating: 4, count: 7))
        for batch in [6, 7, 8] { XCTAssertEqual(windowsPerImage(batch: batch, pairing: .distinct), Array(repeating: 4, count: batch)) }
        // Tops and lefts are distinct (randperm); a grid with fewer positions gives fewer windows.
        var rng = SeededRandom(seed: 2)
        let plan = LoMaRPlan.draw(batch: 2, grid: 8, size: 7, count: 4, masked: 39, pairing: .distinct, rng: &rng)
        XCTAssertEqual(plan.windowsPerImage, 2)
        XCTAssertEqual(Set(plan.windows.map(\.top)).count, 2)
        XCTAssertTrue(plan.masks.allSatisfy { $0.filter { $0 }.count == 39 })
    }

    // MARK: Closed forms

    /// Case 1: feature = patch index; window (2, 3) of 4 on an 8×8 grid; exactly ⌊K²·0.8⌋ rows per
    /// window become the mask token.
    func testWindowExtraction() {
        let patches = Tensor(shape: [1, 64, 1], data: (0..<64).map(Float.init))
        let win = TokenOps.windows(patches, gridWidth: 8, size: 4, windows: [TokenWindow(image: 0, top: 2, left: 3)])
        XCTAssertEqual(win.data, [19, 20, 21, 22, 27, 28, 29, 30, 35, 36, 37, 38, 43, 44, 45, 46])
        var rng = SeededRandom(seed: 5)
        let plan = LoMaRPlan.draw(batch: 2, grid: 8, size: 4, count: 4, masked: LoMaR.Settings().maskedCount(window: 4),
                                  pairing: .distinct, rng: &rng)
        let x = TokenOps.windows(Tensor(shape: [2, 64, 1], data: (0..<128).map(Float.init)), gridWidth: 8, size: 4, windows: plan.windows)
        let replaced = TokenOps.replaceMasked(x, mask: plan.maskFlags, with: Tensor(shape: [1], data: [-1]))
        for r in 0..<plan.windows.count {
            XCTAssertEqual(replaced.data[(r * 16)..<((r + 1) * 16)].filter { $0 == -1 }.count, 12, "row \(r)")
        }
    }

    /// Case 2: with `encoder_pred` zero the loss is the mean over masked patches of
    /// (P − 1)/P · var/(var + 1e-6) (unbiased variance), ≈ 47/48 for P = 48.
    func testZeroHeadLossIdentity() throws {
        let (model, io) = try loadTiny()
        model.encoderPred.weight.value = Tensor(zeros: model.encoderPred.weight.shape)
        model.encoderPred.bias!.value = Tensor(zeros: [48])
        let images = try io.tensor("images")
        let plan = try officialPlan(io, batch: 3, size: 4)
        let out = model.step(images, plan: plan, backward: false)
        let raw = TokenOps.windows(PixelTargets.patchifyChannelsLast(images, patch: 4), gridWidth: 8, size: 4, windows: plan.windows)
        var sum = 0.0, count = 0
        for (row, masked) in plan.maskFlags.enumerated() where masked {
            let x = raw.data[(row * 48)..<((row + 1) * 48)].map(Double.init)
            let mean = x.reduce(0, +) / 48
            let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 47
            sum += 47.0 / 48 * variance / (variance + 1e-6)
            count += 1
        }
        XCTAssertEqual(count, 12 * 12)
        XCTAssertEqual(Double(out.loss), sum / Double(count), accuracy: 1e-5 * sum / Double(count))
        XCTAssertEqual(out.loss, 47.0 / 48, accuracy: 1e-4)
    }

    /// With zero iRPE tables nothing tells window tokens apart but their content: shuffling a
    /// window's tokens shuffles the encoder's outputs the same way. Trained (non-zero) tables
    /// break that.
    func testPermutationEquivarianceWithZeroTables() throws {
        let (model, _) = try loadTiny()
        var rng = SeededRandom(seed: 9)
        let (r, t, d) = (2, 16, 32)
        let x = Tensor(shape: [r, t, d], data: (0..<(r * t * d)).map { _ in rng.normal() })
        let permutation = (0..<t).sorted { ($0 * 7 + 3) % t < ($1 * 7 + 3) % t }
        func permuted(_ y: Tensor, offset: Int) -> Tensor {
            let order = (0..<offset).map { $0 } + permutation.map { $0 + offset }
            return TokenOps.gather(y, index: Array(repeating: order, count: r))
        }
        func equivarianceError() -> Float {
            let out = model.encoder.forwardTokens(x).0
            let outOfPermuted = model.encoder.forwardTokens(permuted(x, offset: 0)).0
            return relativeError(outOfPermuted, permuted(out, offset: 1))
        }
        XCTAssertGreaterThan(equivarianceError(), 1e-3, "the fixture's random tables encode position")
        for block in model.encoder.blocks { block.attn.rpeK!.table.value = Tensor(zeros: block.attn.rpeK!.table.shape) }
        XCTAssertLessThanOrEqual(equivarianceError(), 1e-5)
    }

    // MARK: Seam

    func testFreshNetworkFollowsTheOfficialInit() throws {
        var shape = try XCTUnwrap(BackboneShapeFixture.tiny)
        shape.imgSize = 28
        let (encoder, settings) = try LoMaR.configure(shape, maskRatio: LoMaR.defaultMaskRatio, flags: ObjectiveFlagValues())
        XCTAssertEqual(encoder.posEmbed, .absent)
        XCTAssertEqual(encoder.relativePosition, .irpeProductK)
        XCTAssertEqual(settings.windowSize, 4, "7×7 grid: K = 3.5 rounded")
        XCTAssertEqual(settings.maskedCount(window: 4), 12)
        let network = PretrainingNetwork(config: PretrainingConfig(LoMaR.self, encoder: encoder, settings: settings))
        network.initialize(seed: 1)
        let lomar = try XCTUnwrap(network.objective as? LoMaR)
        XCTAssertTrue(lomar.encoder.blocks.allSatisfy { $0.attn.rpeK!.table.value.data.allSatisfy { $0 == 0 } }, "zero tables")
        XCTAssertTrue(lomar.maskToken.value.data.contains { $0 != 0 })
        XCTAssertEqual(network.capabilities, [.embed, .reconstruct])
        XCTAssertTrue(network.canReconstruct)
        XCTAssertEqual(ObjectiveRegistry.objective(named: "lomar").map { $0.name }, "lomar")

        // config.json round trip, and a config with absolute positions is refused by field name.
        let json = try JSONEncoder().encode(network.config)
        XCTAssertEqual(try JSONDecoder().decode(PretrainingConfig.self, from: json), network.config)
        var bad = network.config
        bad.encoder.posEmbed = .sincosMAE
        XCTAssertTrue(bad.validationErrors().contains { $0.contains("pos_embed") })
        XCTAssertThrowsError(try LoMaR.configure(shape, maskRatio: 0.8, flags: try ObjectiveFlagValues(
            parsing: ["--window-size", "9"], declared: LoMaR.flags, objective: "lomar")))
    }

    /// Settings a user can write (flags or config.json) answer with the cause, never a trap: an
    /// overflowing window, a ratio outside (0, 1), a grid too small for a window, a bad image size.
    func testBadSettingsNameTheirCause() throws {
        var shape = try XCTUnwrap(BackboneShapeFixture.tiny)
        shape.imgSize = 28
        let (encoder, _) = try LoMaR.configure(shape, maskRatio: 0.8, flags: ObjectiveFlagValues())
        func errors(_ settings: LoMaR.Settings, _ config: ViTConfig = encoder) -> String {
            settings.validationErrors(encoder: config).joined(separator: "; ")
        }
        XCTAssertEqual(errors(LoMaR.Settings(windowSize: 4_000_000_000)), "window_size must be within 2...7 (the 7×7 patch grid), got 4000000000")
        XCTAssertEqual(errors(LoMaR.Settings(windowSize: 1)), "window_size must be within 2...7 (the 7×7 patch grid), got 1")
        XCTAssertEqual(errors(LoMaR.Settings(maskRatio: 1e300)), "mask_ratio must be between 0 and 1 (exclusive), got 1e+300")
        XCTAssertEqual(errors(LoMaR.Settings(windowSize: 2, maskRatio: 0.1)), "mask_ratio 0.1 masks 0 of a window's 4 patches; LoMaR needs 1...3")
        var small = encoder
        small.imgSize = 4
        XCTAssertEqual(errors(LoMaR.Settings(), small), "LoMaR needs a patch grid of at least 2×2 (img_size / patch_size ≥ 2), got 1×1")
        // An image size the patch does not divide is the encoder's error, not a window's (K = 8 would
        // not fit the 7×7 grid that 30 px truncates to).
        shape.imgSize = 30
        let window8 = try ObjectiveFlagValues(parsing: ["--window-size", "8"], declared: LoMaR.flags, objective: "lomar")
        XCTAssertThrowsError(try LoMaR.configure(shape, maskRatio: 0.8, flags: window8)) { error in
            XCTAssertTrue("\(error)".contains("img_size 30 must be a positive multiple of patch_size 4"), "\(error)")
            XCTAssertFalse("\(error)".contains("window_size") || "\(error)".contains("patch grid"), "\(error)")
        }
        // MAE encodes the visible patches only, which iRPE's square-grid buckets cannot read.
        shape.imgSize = 28
        var (maeEncoder, maeSettings) = try MAE.configure(shape, maskRatio: 0.75, flags: ObjectiveFlagValues())
        maeEncoder.relativePosition = .irpeProductK
        XCTAssertTrue(PretrainingConfig(MAE.self, encoder: maeEncoder, settings: maeSettings).validationErrors()
            .contains { $0.hasPrefix("relative_position \"irpe_product_k\" needs whole images or windows") })
    }

    /// Reconstructions tile the grid with training-sized windows: on the 8×8 grid four 4×4 tiles
    /// cover each patch once, so the prediction is the training forward's on those windows with the
    /// mask's patches masked, scattered back to the grid.
    func testReconstructionPredictsEveryWindowAsTraining() throws {
        XCTAssertEqual(LoMaR.tileStarts(grid: 8, size: 4), [0, 4])
        XCTAssertEqual(LoMaR.tileStarts(grid: 7, size: 4), [0, 3])
        XCTAssertEqual(LoMaR.tileStarts(grid: 28, size: 4).count, 7)
        let (model, io) = try loadTiny()
        let images = try io.tensor("images")
        var rng = SeededRandom(seed: 21)
        XCTAssertEqual(model.maskedCount, 52, "MAE's rule: N − ⌊N·0.2⌋")
        let mask = RandomMasking.plan(batch: 3, numPatches: 64, visible: 64 - model.maskedCount, rng: &rng)
        let got = model.predictPixels(images, plan: mask)
        let windows = (0..<3).flatMap { n in [0, 4].flatMap { top in [0, 4].map { TokenWindow(image: n, top: top, left: $0) } } }
        let loss = mask.lossMask
        let plan = LoMaRPlan(batch: 3, size: 4, windows: windows,
                             masks: windows.map { w in (0..<16).map { loss[w.image * 64 + (w.top + $0 / 4) * 8 + w.left + $0 % 4] == 1 } })
        let rows = model.step(images, plan: plan, backward: false).prediction
        let grid = TokenOps.windowsBackward(rows, batch: 3, tokens: 64, gridWidth: 8, size: 4, windows: windows)
        let expected = PatchOps.patchify(PixelTargets.unpatchifyChannelsLast(grid, patch: 4, channels: 3, height: 32, width: 32), patch: 4)
        XCTAssertEqual(got.patches, expected)
        XCTAssertEqual(got.normalization?.groupSize, 48)
        // One image per pass gives the same patches (the eval batches are split so).
        XCTAssertEqual(model.predictPixels(images, plan: mask, rowsPerPass: 4).patches, expected)
        let network = try PretrainingDirectory.load(Fixtures.url("pretrain/lomar_tiny"))
        let reconstruction = network.reconstruct(images, plan: mask, statistics: .visible)
        XCTAssertEqual(reconstruction.pixels.shape, [3, 64, 48])
        XCTAssertTrue(reconstruction.pixels.data.allSatisfy(\.isFinite))
    }

    /// A saved LoMaR network loads back and serves the same embeddings (the encoder the service runs).
    func testSavedNetworkServesTheSameEmbeddings() throws {
        let (model, io) = try loadTiny()
        let network = try PretrainingDirectory.load(Fixtures.url("pretrain/lomar_tiny"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lomar-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try PretrainingDirectory.save(network, to: dir)
        let reloaded = try PretrainingDirectory.load(dir)
        let images = try io.tensor("images")
        XCTAssertEqual(reloaded.encoder.embed(images), model.encoder.embed(images))
        XCTAssertEqual(reloaded.encoder.infer(images).shape, [3, 65, 32])
    }
}

/// The tiny preset's sizes for seam tests (patch 4, width 32).
enum BackboneShapeFixture {
    static let tiny: BackboneShape? = BackboneShape(imgSize: 32, patchSize: 4, channels: 1, embedDim: 32, depth: 2, numHeads: 2,
                                                    decoderDim: 16, decoderDepth: 1, deepDecoderDepth: 1)
}
