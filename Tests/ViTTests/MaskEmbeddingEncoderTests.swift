import XCTest
import Tensor
import ViT
import Checkpoint
import TestSupport

/// The all-token encoder with masked patches replaced by a learned embedding (iBOT / BEiT), loaded
/// from model directories the PyTorch reference wrote (encoders/masked_embed_*): latent, a tapped
/// block output, d images, every encoder gradient and the mask embedding's. Tolerance 1e-4 relative.
final class MaskEmbeddingEncoderTests: XCTestCase {
    let tol: Float = 1e-4
    private var savedSplit = InferenceSplit.current
    override func setUp() { savedSplit = InferenceSplit.current; InferenceSplit.current = .byOperation }
    override func tearDown() { InferenceSplit.current = savedSplit }

    func load(_ name: String) throws -> (VisionTransformer, SafeTensorsFile, mask: [[Bool]], maskEmbed: Parameter) {
        let dir = Fixtures.url("encoders/\(name)")
        let io = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let (shape, flags) = try io.integers("mask")
        let mask = (0..<shape[0]).map { b in flags[(b * shape[1])..<((b + 1) * shape[1])].map { $0 != 0 } }
        return (try ModelDirectory.loadEncoder(dir), io, mask, Parameter(try io.tensor("mask_embed")))
    }

    func assertClose(_ a: Tensor, _ b: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let err = relativeError(a, b)
        XCTAssertLessThanOrEqual(err, tol, "\(what): relative error \(err)", file: file, line: line)
    }

    func checkAgainstPyTorch(_ name: String) throws {
        let (model, io, mask, maskEmbed) = try load(name)
        XCTAssertTrue(mask.joined().contains(true) && mask.joined().contains(false))
        let (encoding, cache) = model.forwardMasked(try io.tensor("images"), mask: mask, maskEmbed: maskEmbed, featureLayers: [0])
        assertClose(encoding.latent, try io.tensor("latent"), "\(name) latent")
        assertClose(try XCTUnwrap(encoding.features[0]), try io.tensor("feature0"), "\(name) block 0 output")

        let dImages = model.backwardMasked(dLatent: try io.tensor("dlatent"), dFeatures: [0: try io.tensor("dfeature0")], cache: cache)
        assertClose(dImages, try io.tensor("dimages"), "\(name) d images")
        assertClose(maskEmbed.grad, try io.tensor("grad.mask_embed"), "\(name) d mask embedding")
        var checked = 0
        for (key, p) in model.parameters.entries where p.trainable {
            assertClose(p.grad, try io.tensor("grad." + key), "\(name) grad \(key)")
            checked += 1
        }
        XCTAssertEqual(checked, io.entries.keys.filter { $0.hasPrefix("grad.") }.count - 1, "every reference gradient compared")
    }

    /// iBOT-style: timm qkv bias, learned absolute positions.
    func testQKVEncoderWithLearnedPositions() throws { try checkAgainstPyTorch("masked_embed_qkv") }

    /// BEiT / LoMaR-style: q/v biases, `pos_embed: none`, layer scale.
    func testBEiTStyleEncoderWithoutPositionsAndWithLayerScale() throws {
        let (model, _, _, _) = try load("masked_embed_beit")
        XCTAssertEqual(model.config.posEmbed, .absent)
        XCTAssertEqual(model.config.layerScaleInit, 0.1)
        XCTAssertFalse(model.hasAbsolutePositions)
        XCTAssertNil(model.parameters["pos_embed"], "no position table is registered (or saved)")
        XCTAssertNotNil(model.parameters["blocks.1.gamma_2"])
        try checkAgainstPyTorch("masked_embed_beit")
    }

    /// With no patch masked the masked forward is the plain forward, bit for bit; the inference path
    /// (layer scale, no positions) is too, and the mask embedding then gets no gradient.
    func testNoMaskIsThePlainForward() throws {
        for name in ["masked_embed_qkv", "masked_embed_beit"] {
            let (model, io, mask, maskEmbed) = try load(name)
            let images = try io.tensor("images")
            let none = mask.map { $0.map { _ in false } }
            let (encoding, cache) = model.forwardMasked(images, mask: none, maskEmbed: maskEmbed)
            let plain = model.forward(images).0
            XCTAssertEqual(encoding.latent, plain, name)
            XCTAssertEqual(model.infer(images), plain, "\(name) infer")
            _ = model.backwardMasked(dLatent: try io.tensor("dlatent"), cache: cache)
            XCTAssertEqual(maskEmbed.grad, Tensor(zeros: maskEmbed.shape), name)
        }
    }

    /// The flat (B·N) mask is the same as the per-image one.
    func testFlatMaskEqualsNestedMask() throws {
        let (model, io, mask, maskEmbed) = try load("masked_embed_qkv")
        let images = try io.tensor("images")
        XCTAssertEqual(model.forwardMasked(images, mask: mask.flatMap { $0 }, maskEmbed: maskEmbed).0.latent,
                       model.forwardMasked(images, mask: mask, maskEmbed: maskEmbed).0.latent)
    }
}
