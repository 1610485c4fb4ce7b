import XCTest
import Tensor
@testable import ViT
import Checkpoint
import TestSupport

/// One workspace serves every batch of a model: growing, shrinking and growing again must
/// never change a number (the server reuses one per model for all its batches).
final class InferenceWorkspaceTests: XCTestCase {
    func testReusedWorkspaceGivesTheForwardPassExactly() throws {
        for name in ["timm_qkv_cls", "bootmae_qv"] {
            let dir = Fixtures.url("encoders/\(name)")
            let model = try ModelDirectory.loadEncoder(dir)
            let images = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("io.safetensors")).tensor("images")
            let workspace = InferenceWorkspace()
            for batch in [2, 1, 3, 2] {
                let input = repeatedImages(images, count: batch)
                XCTAssertEqual(model.infer(input, workspace: workspace), model.forward(input).0, "\(name), batch \(batch)")
            }
            XCTAssertGreaterThan(workspace.byteCount, 0)
        }
    }

    func testIntermediateTokensMatchTheTrainingForwardBlocks() throws {
        let dir = Fixtures.url("encoders/timm_qkv_cls")
        let model = try ModelDirectory.loadEncoder(dir)
        let images = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("io.safetensors")).tensor("images")
        var x = model.addClassAndPosition(model.patchEmbed.forward(images).0)
        let workspace = InferenceWorkspace()
        for (i, block) in model.blocks.enumerated() {
            x = block.forward(x).0
            XCTAssertEqual(model.intermediateTokens(images, blocks: i + 1, workspace: workspace), x, "after block \(i)")
        }
    }

    /// `count` images cycling through the fixture's images.
    func repeatedImages(_ images: Tensor, count: Int) -> Tensor {
        let per = images.count / images.shape[0]
        let data = (0..<count).flatMap { i in images.data[((i % images.shape[0]) * per)..<((i % images.shape[0] + 1) * per)] }
        return Tensor(shape: [count] + Array(images.shape.dropFirst()), data: Array(data))
    }
}
