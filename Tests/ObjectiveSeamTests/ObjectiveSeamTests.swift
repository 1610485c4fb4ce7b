import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import ImageKit
import Objectives
import Training
@testable import Service
import TestSupport

/// The seam is open: an objective defined only in this test target (`MaskedMeanObjective`) trains,
/// checkpoints, resumes exactly, exports, and is served for embeddings, through the same code paths
/// as MAE and BootMAE.
final class ObjectiveSeamTests: TrainingTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        ObjectiveRegistry.register(MaskedMeanObjective.self)
    }

    let config = PretrainingConfig(MaskedMeanObjective.self, encoder: ViTConfig(
        imgSize: 28, patchSize: 7, inChans: 1, embedDim: 32, depth: 2, numHeads: 2, mlpRatio: 2, qkvBias: .qkv,
        layerNormEps: 1e-6, globalPool: .cls, mean: [0.5], std: [0.5], posEmbed: .sincosMAE), settings: .init(maskRatio: 0.5))

    var recipe: PretrainRecipe {
        PretrainRecipe(MaskedMeanObjective.self, options: .init(masking: .block), data: Self.fashionMNIST, seed: 5, epochs: 2,
                       batchSize: 32, lr: 1e-3, minLR: 0, warmupEpochs: 0.5, checkpointEvery: 1000, subset: 128)
    }

    func quiet() -> ProgressReporter { ProgressReporter(interactive: false, logEvery: 1e9) }

    func testToyObjectiveTrainsResumesExportsAndServes() throws {
        // Trains, straight through: the loss it reports is what metrics.jsonl and loss.png show.
        let straight = try RunDirectory(scratch.appendingPathComponent("straight").path, mode: .fresh)
        let trainer = try Pretrainer(config: config, recipe: recipe, run: straight, resume: false)
        let summary = try trainer.train(progress: quiet())
        XCTAssertEqual(summary.steps, 8)
        XCTAssertEqual((straight.readMetrics().last?["loss"] as? NSNumber)?.floatValue, summary.finalLoss)
        XCTAssertTrue(FileManager.default.fileExists(atPath: straight.file("loss.png").path))

        // config.json and recipe.json name the objective and carry its settings and options.
        let savedConfig = try straight.readJSON(PretrainingConfig.self, from: "config.json")
        XCTAssertEqual(savedConfig, config)
        XCTAssertEqual(try straight.readJSON(PretrainRecipe.self, from: "recipe.json"), recipe)

        // Stopped after 3 steps and resumed, the checkpoint ends bit for bit as the straight one.
        let splitPath = scratch.appendingPathComponent("split").path
        do { _ = try Pretrainer(config: config, recipe: recipe, run: try RunDirectory(splitPath, mode: .fresh), resume: false)
                .train(maxSteps: 3, progress: quiet()) }
        _ = try Pretrainer(config: config, recipe: recipe, run: try RunDirectory(splitPath, mode: .resume), resume: true).train(progress: quiet())
        let a = try SafeTensorsFile(contentsOf: straight.file(RunDirectory.checkpointName))
        let b = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: splitPath).appendingPathComponent(RunDirectory.checkpointName))
        XCTAssertTrue(a.names.contains("mean_head.weight") && a.names.contains("optim.m.mean_head.weight"))
        for name in a.names { XCTAssertEqual(try a.tensor(name), try b.tensor(name), name) }

        // Exports, and the service loads the export: embeddings equal the trained encoder's.
        let models = scratch.appendingPathComponent("models")
        let export = try Exporter.export(run: straight.url.path, to: models.appendingPathComponent("toy").path, half: false, overwrite: false)
        XCTAssertEqual(export.kind, .pretraining)
        let registry = try ModelRegistry(directory: models.path)
        let served = try registry.model("toy")
        XCTAssertEqual(served.network?.config.objective, MaskedMeanObjective.name)
        XCTAssertEqual(served.capabilities, [.embed], "a toy without a pixel decoder reconstructs nothing")
        let service = Service(registry: registry, limits: .init(maxBatch: 4, maxDelay: 0.001, maxQueue: 8), options: .init())
        service.markReady()
        let png = try Data(contentsOf: Fixtures.url("fmnist/test00000-ankle-boot.png"))
        let response = try post(service, "/v1/embeddings", ["model": "toy", "input": png.base64EncodedString(), "pooling": "cls"])
        XCTAssertEqual(response.status, 200)
        let data = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["data"] as? [[String: Any]])
        let embedding = try XCTUnwrap(data.first?["embedding"] as? [NSNumber]).map(\.floatValue)
        let input = Tensor(shape: [1, 1, 28, 28], data: served.preprocessor.tensorCHW(try ImageDecoder.decode(png)))
        let expected = trainer.network.encoder.embed(input, pooling: .cls)
        XCTAssertEqual(embedding.count, 32)
        for (x, y) in zip(embedding, expected.data) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    func testUnknownObjectiveIsNamedWithTheKnownOnes() throws {
        let dir = scratch.appendingPathComponent("unknown")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        json = json.replacingOccurrences(of: MaskedMeanObjective.name, with: "no-such-objective")
        try Data(json.utf8).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try PretrainingDirectory.readConfig(dir)) { error in
            XCTAssertTrue("\(error)".contains("no-such-objective") && "\(error)".contains("bootmae"), "\(error)")
        }
    }

    func post(_ service: Service, _ path: String, _ json: [String: Any]) throws -> ServiceResponse {
        let request = ServiceRequest(method: "POST", path: path, query: [:], headers: ["content-type": "application/json"],
                                     body: [UInt8](try JSONSerialization.data(withJSONObject: json)))
        let route = try XCTUnwrap(service.routes.first { $0.method == "POST" && $0.pattern == path })
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: ServiceResponse?
        route.handler(request, [:]) { result = $0; done.signal() }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        return try XCTUnwrap(result)
    }
}
