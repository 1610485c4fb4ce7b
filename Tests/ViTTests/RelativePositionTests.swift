import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import TestSupport

/// LoMaR's contextual iRPE on keys against the official code (tools/reference/make_lomar_fixtures.py
/// runs junchen14/LoMaR's vision_transformer_irpe.Attention, irpe.py and models_vit_rp.py): bucket
/// tables exactly, the attention layer's output and every gradient (table included) within 1e-5,
/// whole RPE-only encoders within 1e-4, and the inference path bit for bit against `forward`.
final class RelativePositionTests: XCTestCase {
    private var savedSplit = InferenceSplit.current
    override func setUp() { savedSplit = InferenceSplit.current; InferenceSplit.current = .byOperation }
    override func tearDown() { InferenceSplit.current = savedSplit }

    func assertClose(_ a: Tensor, _ b: Tensor, _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let e = relativeError(a, b)
        XCTAssertLessThanOrEqual(e, tol, "\(what): relative error \(e)", file: file, line: line)
    }

    // MARK: Buckets

    /// Rows of irpe.py's bucket table (query (0, 0), cls key first), hand-computed from its formula:
    /// per axis |Δ| 0, 1, 2, 3, ≥4 → 0, 1, 2, 2, 3; bucket (ρ(Δrow) + 3)·7 + ρ(Δcol) + 3; cls 49.
    func testBucketRowsMatchTheHandComputedOnes() {
        let k7 = RelativePositionBuckets.table(tokens: 50)
        XCTAssertEqual(k7[50..<100].map(Int.init),
                       [49, 24, 23, 22, 22, 21, 21, 21, 17, 16, 15, 15, 14, 14, 14, 10, 9, 8, 8, 7, 7, 7, 10, 9, 8, 8, 7, 7, 7,
                        3, 2, 1, 1, 0, 0, 0, 3, 2, 1, 1, 0, 0, 0, 3, 2, 1, 1, 0, 0, 0])
        let k4 = RelativePositionBuckets.table(tokens: 17)
        XCTAssertEqual(k4[17..<34].map(Int.init), [49, 24, 23, 22, 22, 17, 16, 15, 15, 10, 9, 8, 8, 10, 9, 8, 8])
        // The cls row and column are bucket 49 everywhere; a token and itself is (3, 3) → 24.
        XCTAssertTrue(k4[0..<17].allSatisfy { $0 == 49 } && stride(from: 0, to: 289, by: 17).allSatisfy { k4[$0] == 49 })
        XCTAssertTrue((1..<17).allSatisfy { k4[$0 * 17 + $0] == 24 })
        // Within a 4×4 window only 26 of the 50 buckets occur (offsets −3…3 per axis: 5×5 + cls).
        XCTAssertEqual(Set(k4).count, 26)
        XCTAssertEqual(RelativePositionBuckets.count, 50)
    }

    func testBucketTablesMatchTheOfficialOnes() throws {
        for (name, tokens) in [("k4", 17), ("k7", 50)] {
            let f = try Fixtures.file("lomar/irpe_attention_\(name).safetensors")
            let (shape, official) = try f.integers("buckets")
            XCTAssertEqual(shape, [tokens, tokens])
            XCTAssertEqual(RelativePositionBuckets.table(tokens: tokens).map(Int.init), official, name)
        }
    }

    // MARK: The attention layer

    func attention(_ f: SafeTensorsFile) throws -> SelfAttention {
        let dim = try f.tensor("x").shape[2]
        var params = ParameterList()
        let attn = SelfAttention(dim: dim, heads: Int(try XCTUnwrap(f.meta("heads"))), bias: .qkv, relativePosition: .irpeProductK,
                                 name: "", into: &params)
        XCTAssertEqual(params.names, [".qkv.weight", ".qkv.bias", ".proj.weight", ".proj.bias", ".rpe_k.lookup_table_weight"])
        try loadParameters(params, from: f, prefix: "param", stripping: "")
        return attn
    }

    func testIRPEAttentionMatchesTheOfficialLayer() throws {
        for name in ["k4", "k7"] {
            let f = try Fixtures.file("lomar/irpe_attention_\(name).safetensors")
            let attn = try attention(f)
            let heads = attn.heads
            let rpe = try XCTUnwrap(attn.rpeK)
            assertClose(rpe.bias(qkv: try f.tensor("qkv"), heads: heads).values, try f.tensor("rpe_bias"), 1e-5, "\(name) rpe_k(q)")
            let (out, cache) = attn.forward(try f.tensor("x"))
            assertClose(out, try f.tensor("out"), 1e-5, "\(name) out")
            let dx = attn.backward(try f.tensor("dy"), cache: cache)
            assertClose(dx, try f.tensor("dx"), 1e-5, "\(name) dx")
            for (pname, p) in [("qkv.weight", attn.qkv.weight), ("qkv.bias", attn.qkv.bias!), ("proj.weight", attn.proj.weight),
                               ("proj.bias", attn.proj.bias!), ("rpe_k.lookup_table_weight", rpe.table)] {
                assertClose(p.grad, try f.tensor("grad.\(pname)"), 1e-5, "\(name) grad \(pname)")
            }
        }
    }

    /// The table's gradient accumulates (+=) like every other parameter's.
    func testTableGradientAccumulates() throws {
        let f = try Fixtures.file("lomar/irpe_attention_k4.safetensors")
        let attn = try attention(f)
        for _ in 0..<2 {
            let (_, cache) = attn.forward(try f.tensor("x"))
            _ = attn.backward(try f.tensor("dy"), cache: cache)
        }
        let ref = try f.tensor("grad.rpe_k.lookup_table_weight")
        assertClose(attn.rpeK!.table.grad, Tensor(shape: ref.shape, data: ref.data.map { 2 * $0 }), 1e-5, "twice d table")
    }

    // MARK: RPE-only encoders (models_vit_rp.py)

    func load(_ name: String) throws -> (VisionTransformer, SafeTensorsFile) {
        let dir = Fixtures.url("encoders/\(name)")
        return (try ModelDirectory.loadEncoder(dir), try SafeTensorsFile(contentsOf: dir.appendingPathComponent("io.safetensors")))
    }

    func testRPEEncoderMatchesTheOfficialModelForwardAndBackward() throws {
        let (model, io) = try load("lomar_rpe_cls")
        XCTAssertEqual(model.config.relativePosition, .irpeProductK)
        XCTAssertFalse(model.hasAbsolutePositions)
        XCTAssertNil(model.parameters["pos_embed"])
        let images = try io.tensor("images")
        let (tokens, cache) = model.forward(images)
        assertClose(tokens, try io.tensor("tokens"), 1e-4, "tokens")
        XCTAssertEqual(model.infer(images), tokens, "infer vs forward")
        assertClose(model.embed(images), try io.tensor("pooled_cls"), 1e-4, "served embedding (cls)")
        assertClose(model.backward(try io.tensor("dtokens"), cache: cache), try io.tensor("dimages"), 1e-4, "d images")
        var checked = 0
        for (name, p) in model.parameters.entries where p.trainable {
            assertClose(p.grad, try io.tensor("grad." + name), 1e-4, "grad \(name)")
            checked += 1
        }
        XCTAssertEqual(checked, io.entries.keys.filter { $0.hasPrefix("grad.") }.count)
    }

    func testFineTunedRPEClassifierMatchesTheOfficialModel() throws {
        let (model, io) = try load("lomar_rpe_finetune")
        XCTAssertNil(model.norm)
        let images = try io.tensor("images")
        let tokens = model.infer(images)
        assertClose(tokens, try io.tensor("tokens"), 1e-4, "tokens")
        let pooled = model.pool(tokens)
        assertClose(pooled, try io.tensor("pooled_mean"), 1e-4, "fc_norm(mean)")
        assertClose(try XCTUnwrap(model.classify(pooled)), try io.tensor("logits"), 1e-4, "logits")
    }

    /// As the server runs it: block weights packed, batch split by images over two workers.
    func testPackedRPEEncoderServesTheSameTokens() throws {
        let savedWorkers = Parallel.workers
        defer { Parallel.workers = savedWorkers }
        let (model, io) = try load("lomar_rpe_cls")
        model.packForInference(releasingPlainValues: true)
        let images = try io.tensor("images"), expected = try io.tensor("tokens")
        for (workers, split) in [(1, InferenceSplit.byOperation), (2, .byOperation), (2, .byImage)] {
            Parallel.workers = workers
            InferenceSplit.current = split
            assertClose(model.infer(images), expected, 1e-4, "infer, \(workers) worker(s), \(split)")
        }
    }

    // MARK: Config

    func testConfigFieldRoundTripsAndIsAbsentByDefault() throws {
        let config = try ModelDirectory.readConfig(Fixtures.url("encoders/lomar_rpe_cls"))
        XCTAssertEqual(config.relativePosition, .irpeProductK)
        XCTAssertEqual(config.posEmbed, .absent)
        let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        XCTAssertTrue(json.contains(#""relative_position":"irpe_product_k""#), json)
        XCTAssertEqual(try JSONDecoder().decode(ViTConfig.self, from: Data(json.utf8)), config)
        let plain = try ModelDirectory.readConfig(Fixtures.url("encoders/timm_qkv_cls"))
        XCTAssertNil(plain.relativePosition)
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(plain), as: UTF8.self).contains("relative_position"))
        XCTAssertNil(VisionTransformer(config: plain).blocks[0].attn.rpeK)
    }
}
