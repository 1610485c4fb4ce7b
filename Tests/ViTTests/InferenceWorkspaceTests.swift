import XCTest
import Tensor
@testable import ViT
import Checkpoint
import TestSupport

/// One workspace serves every batch of a model: growing, shrinking and growing again must
/// never change a number (the server reuses one per model for all its batches).
final class InferenceWorkspaceTests: XCTestCase {
    // Exactness against `forward` holds for the same arithmetic path: every op split the same way.
    // Split by images, shards run smaller GEMMs that BLAS may round differently (tested below to 1e-6).
    private var savedSplit = InferenceSplit.current
    override func setUp() { savedSplit = InferenceSplit.current; InferenceSplit.current = .byOperation }
    override func tearDown() { InferenceSplit.current = savedSplit }

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

    /// Split by images over two workers (shards of 1 and 2 images for a batch of 3, a workspace
    /// each), the tokens are the ones of the one-pass training forward, at every depth.
    func testSplitByImageGivesTheSameTokens() throws {
        let savedWorkers = Parallel.workers, savedSplit = InferenceSplit.current
        defer { Parallel.workers = savedWorkers; InferenceSplit.current = savedSplit }
        let dir = Fixtures.url("encoders/bootmae_qv")
        let model = try ModelDirectory.loadEncoder(dir)
        let images = repeatedImages(try SafeTensorsFile(contentsOf: dir.appendingPathComponent("io.safetensors")).tensor("images"), count: 3)
        Parallel.workers = 1
        let reference = model.forward(images).0
        Parallel.workers = 2
        InferenceSplit.current = .byImage
        let workspace = InferenceWorkspace()
        for _ in 0..<2 {  // the second call reuses the shards' workspaces
            let tokens = model.infer(images, workspace: workspace)
            XCTAssertEqual(tokens.shape, reference.shape)
            XCTAssertLessThanOrEqual(relativeError(tokens, reference), 1e-6)
        }
        XCTAssertLessThanOrEqual(relativeError(model.intermediateTokens(images, blocks: 1, workspace: workspace),
                                                       model.blocks[0].forward(model.addClassAndPosition(model.patchEmbed.forward(images).0)).0), 1e-6)
    }

    /// `count` images cycling through the fixture's images.
    func repeatedImages(_ images: Tensor, count: Int) -> Tensor {
        let per = images.count / images.shape[0]
        let data = (0..<count).flatMap { i in images.data[((i % images.shape[0]) * per)..<((i % images.shape[0] + 1) * per)] }
        return Tensor(shape: [count] + Array(images.shape.dropFirst()), data: Array(data))
    }
}
