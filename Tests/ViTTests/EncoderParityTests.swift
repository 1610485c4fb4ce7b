import XCTest
import Tensor
import ViT
import Checkpoint
import TestSupport

/// Whole encoders loaded by name from model directories the PyTorch reference wrote, compared on
/// every token, both poolings, logits, and (where stored) every parameter and input gradient.
/// Tolerance: 1e-4 relative (max|Δ| / max|ref|).
final class EncoderParityTests: XCTestCase {
    let tol: Float = 1e-4
    // `infer` equals `forward` exactly when both split every op the same way (see InferenceWorkspaceTests).
    private var savedSplit = InferenceSplit.current
    override func setUp() { savedSplit = InferenceSplit.current; InferenceSplit.current = .byOperation }
    override func tearDown() { InferenceSplit.current = savedSplit }

    func load(_ name: String) throws -> (VisionTransformer, SafeTensorsFile) {
        let dir = Fixtures.url("encoders/\(name)")
        return (try ModelDirectory.loadEncoder(dir), try SafeTensorsFile(contentsOf: dir.appendingPathComponent("io.safetensors")))
    }

    func assertClose(_ a: Tensor, _ b: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape.reduce(1, *), b.shape.reduce(1, *), what, file: file, line: line)
        let err = relativeError(a, b)
        XCTAssertLessThanOrEqual(err, tol, "\(what): relative error \(err)", file: file, line: line)
    }

    /// Forward (tokens, both poolings) and backward (all gradients) of a pretrained-style encoder.
    func checkPretrainedEncoder(_ name: String) throws {
        let (model, io) = try load(name)
        let (tokens, cache) = model.forward(try io.tensor("images"))
        assertClose(tokens, try io.tensor("tokens"), "tokens")
        // The inference path (no caches) must compute exactly the training forward's numbers.
        XCTAssertEqual(model.infer(try io.tensor("images")), tokens, "infer vs forward")
        assertClose(model.pool(tokens, .cls), try io.tensor("pooled_cls"), "cls pooling")
        assertClose(model.pool(tokens, .mean), try io.tensor("pooled_mean"), "mean pooling")

        let dImages = model.backward(try io.tensor("dtokens"), cache: cache)
        assertClose(dImages, try io.tensor("dimages"), "d images")
        var checked = 0
        for (name, p) in model.parameters.entries where p.trainable {
            assertClose(p.grad, try io.tensor("grad." + name), "grad \(name)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 20)
    }

    func testTimmViTWithQKVBiasAndClsPooling() throws { try checkPretrainedEncoder("timm_qkv_cls") }

    /// As the server runs them: block weights packed for the AVX-512 GEMM, plain copies released,
    /// batch split by images over two workers; against the PyTorch tokens, through both paths.
    func testPackedEncodersMatchTheReference() throws {
        try XCTSkipUnless(PackedMatrix.isAvailable, "no AVX-512 on this CPU: weights are never packed")
        let savedWorkers = Parallel.workers, savedSplit = InferenceSplit.current
        defer { Parallel.workers = savedWorkers; InferenceSplit.current = savedSplit }
        for name in ["timm_qkv_cls", "bootmae_qv"] {
            let (model, io) = try load(name)
            XCTAssertTrue(model.packForInference(releasingPlainValues: true))
            XCTAssertTrue(model.blocks[0].mlp.fc1.weight.isPackedOnly)
            let images = try io.tensor("images"), expected = try io.tensor("tokens")
            for (workers, split) in [(1, InferenceSplit.byOperation), (2, .byOperation), (2, .byImage)] {
                Parallel.workers = workers
                InferenceSplit.current = split
                assertClose(model.infer(images), expected, "\(name) infer, \(workers) worker(s), \(split)")
                assertClose(model.forward(images).0, expected, "\(name) forward, \(workers) worker(s)")
            }
        }
    }

    func testBootMAEEncoderWithQAndVBiases() throws { try checkPretrainedEncoder("bootmae_qv") }

    func testTimmAvgPoolModelWithHead() throws {
        let (model, io) = try load("timm_qkv_avg_head")
        XCTAssertNil(model.norm, "timm's avg-pool model has no final norm")
        XCTAssertNotNil(model.fcNorm)
        let tokens = model.forward(try io.tensor("images")).0
        let pooled = model.pool(tokens)
        assertClose(pooled, try io.tensor("pooled_mean"), "fc_norm(mean)")
        assertClose(try XCTUnwrap(model.classify(pooled)), try io.tensor("logits"), "logits")
    }

    func testGeneratedBootMAESinCosTable() throws {
        let (model, io) = try load("bootmae_qv_sincos")
        XCTAssertFalse(model.posEmbed.trainable)
        assertClose(model.forward(try io.tensor("images")).0, try io.tensor("tokens"), "tokens")
    }

    func testGrayscaleMAEWithGeneratedSinCosTable() throws {
        let (model, io) = try load("mae_gray_sincos")
        XCTAssertEqual(model.config.inChans, 1)
        assertClose(model.forward(try io.tensor("images")).0, try io.tensor("tokens"), "tokens")
    }

    func testSinCosTablesMatchReference() throws {
        let f = try Fixtures.file("ops/pos_embed_sincos.safetensors")
        for (suffix, dim, grid) in [("", 16, 3), ("_64", 64, 8)] {
            let bootmae = SinCosPositionalEmbedding.table(grid: grid, dim: dim, order: .rowFirst)
            let mae = SinCosPositionalEmbedding.table(grid: grid, dim: dim, order: .columnFirst)
            XCTAssertLessThanOrEqual(relativeError(bootmae, try f.tensor("bootmae" + suffix)), 1e-6)
            XCTAssertLessThanOrEqual(relativeError(mae, try f.tensor("mae" + suffix)), 1e-6)
        }
    }
}
