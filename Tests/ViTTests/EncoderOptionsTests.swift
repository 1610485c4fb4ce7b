import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import TestSupport

/// The config fields `pos_embed: "none"` and `layer_scale_init`: absent from every existing
/// config.json, which must decode and encode as before; a model without positions saves and loads
/// without a `pos_embed` key.
final class EncoderOptionsTests: XCTestCase {
    func testExistingConfigsDecodeWithoutTheNewOptionsAndEncodeWithoutThem() throws {
        for name in ["timm_qkv_cls", "bootmae_qv", "mae_gray_sincos"] {
            let config = try ModelDirectory.readConfig(Fixtures.url("encoders/\(name)"))
            XCTAssertNil(config.layerScaleInit, name)
            XCTAssertNotEqual(config.posEmbed, .absent, name)
            let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
            XCTAssertFalse(json.contains("layer_scale_init"), name)
            let model = VisionTransformer(config: config)
            XCTAssertFalse(model.parameters.names.contains { $0.contains("gamma") }, name)
        }
    }

    func testNewOptionsRoundTripThroughJSON() throws {
        let json = #"{"img_size": 12, "patch_size": 4, "in_chans": 3, "embed_dim": 16, "depth": 2, "num_heads": 2,"#
            + #" "mlp_ratio": 4.0, "qkv_bias": "qv", "layer_norm_eps": 1e-6, "global_pool": "cls", "mean": [0.5, 0.5, 0.5],"#
            + #" "std": [0.5, 0.5, 0.5], "pos_embed": "none", "layer_scale_init": 0.1}"#
        let config = try JSONDecoder().decode(ViTConfig.self, from: Data(json.utf8))
        XCTAssertEqual(config.posEmbed, .absent)
        XCTAssertEqual(config.layerScaleInit, 0.1)
        XCTAssertEqual(try JSONDecoder().decode(ViTConfig.self, from: try JSONEncoder().encode(config)), config)
        var bad = config
        bad.layerScaleInit = .nan
        XCTAssertFalse(bad.validationErrors().isEmpty)
    }

    func testModelWithoutPositionsSavesAndLoadsWithoutATable() throws {
        let model = try ModelDirectory.loadEncoder(Fixtures.url("encoders/masked_embed_beit"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("no-pos-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try ModelDirectory.save(config: model.config, parameters: model.parameters, to: dir)
        let weights = try SafeTensorsFile(contentsOf: dir.appendingPathComponent(ModelDirectory.weightsName))
        XCTAssertNil(weights.entries["pos_embed"])
        XCTAssertNotNil(weights.entries["blocks.0.gamma_1"])
        let again = try ModelDirectory.loadEncoder(dir)
        let images = try Fixtures.file("encoders/masked_embed_beit/io.safetensors").tensor("images")
        XCTAssertEqual(again.forward(images).0, model.forward(images).0)
    }

    /// LoMaR's checkpoints hold a frozen table their encoder never adds: a `none` model loads such a
    /// checkpoint, ignores the table, and computes what the same weights give without it.
    func testTableInACheckpointOfAModelWithoutPositionsIsIgnored() throws {
        var config = try ModelDirectory.readConfig(Fixtures.url("encoders/timm_qkv_cls"))
        config.posEmbed = .absent
        let weights = try SafeTensorsFile(contentsOf: Fixtures.url("encoders/timm_qkv_cls/model.safetensors"))
        XCTAssertNotNil(weights.entries["pos_embed"])
        let model = try ModelDirectory.encoder(config: config, weights: weights)
        XCTAssertNil(model.parameters["pos_embed"])
        let withTable = try ModelDirectory.loadEncoder(Fixtures.url("encoders/timm_qkv_cls"))
        withTable.posEmbed.value = Tensor(zeros: withTable.posEmbed.shape)
        let images = try Fixtures.file("encoders/timm_qkv_cls/io.safetensors").tensor("images")
        XCTAssertEqual(model.forward(images).0, withTable.forward(images).0)
    }
}
