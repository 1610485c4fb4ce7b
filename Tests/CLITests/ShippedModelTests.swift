import XCTest
import Foundation
import ImageKit
import TestSupport

/// The models the project ships in `models/`, served by the real `bootmae-serve` with nothing but a
/// models folder and a port, as the README's run command does, on the committed Fashion-MNIST test
/// images (Tests/Fixtures/fmnist): embeddings and reconstructions are finite and the same on every
/// call, reconstructions beat the best guess that needs no model, and the classifier gives the labels
/// recorded when it was exported.
final class ShippedModelTests: ShippedServerTestCase {
    static let pretrained = "bootmae-vit-tiny-fmnist"
    static let classifier = "bootmae-vit-tiny-fmnist-cls"

    var expectations: ShippedServer.Expectations { shipped.expectations }
    var images: [Data] { shipped.images }

    func call(_ path: String, _ body: [String: Any]) throws -> (status: Int, json: [String: Any]) {
        try shipped.call(path, body)
    }

    func testTheDefaultModelIsTheBootMAEExport() throws {
        let r = try shipped.get("/v1/models")
        XCTAssertEqual(r.status, 200)
        let data = try XCTUnwrap(r.json["data"] as? [[String: Any]])
        let ids = data.compactMap { $0["id"] as? String }
        XCTAssertTrue(ids.contains(Self.pretrained), "served: \(ids)")
        XCTAssertTrue(ids.contains(Self.classifier), "served: \(ids)")
        XCTAssertEqual(data.filter { ($0["default"] as? Bool) == true }.compactMap { $0["id"] as? String }, [Self.pretrained])
    }

    func testEmbeddingsAreFiniteAndDeterministic() throws {
        let inputs = images.map { $0.base64EncodedString() }
        let batch = try call("/v1/embeddings", ["model": Self.pretrained, "input": inputs])
        let again = try call("/v1/embeddings", ["model": Self.pretrained, "input": [inputs[3]]])
        XCTAssertEqual(batch.status, 200)
        XCTAssertEqual(again.status, 200)
        let all = ShippedServer.embeddings(batch.json), single = ShippedServer.embeddings(again.json)
        XCTAssertEqual(all.count, images.count)
        XCTAssertTrue(all.allSatisfy { $0.count == 128 && $0.allSatisfy(\.isFinite) })
        // Alone or in a batch of ten, an image gets the same vector (bit for bit: rows are independent).
        XCTAssertEqual(single.first, all[3])
        // Different garments get different embeddings.
        XCTAssertNotEqual(all[0], all[1])
    }

    /// With each masked patch's true mean and spread (the default `stats: patch`), the guess that needs
    /// no model is the patch mean, whose error is the patch's own variance. The model must beat it on
    /// every image and halve it overall (measured at export: 0.49 of it over these ten images).
    func testReconstructionsAreDeterministicAndBeatThePatchMean() throws {
        var modelError = 0.0, baselineError = 0.0
        for (index, data) in images.enumerated() {
            let body: [String: Any] = ["model": Self.pretrained, "input": data.base64EncodedString(), "mask_ratio": 0.75, "seed": index]
            let first = try call("/v1/reconstructions", body)
            let second = try call("/v1/reconstructions", body)
            XCTAssertEqual(first.status, 200)
            let mse = try XCTUnwrap((first.json["mse"] as? NSNumber)?.doubleValue, "\(first.json)")
            let mask = try XCTUnwrap(first.json["mask"] as? [Int])
            XCTAssertTrue(mse.isFinite)
            XCTAssertEqual(mask.count, 37)
            XCTAssertEqual(mask, second.json["mask"] as? [Int])
            XCTAssertEqual(first.json["mse"] as? NSNumber, second.json["mse"] as? NSNumber)

            let image = try ImageDecoder.decode(data)
            XCTAssertEqual([image.width, image.height, image.channels], [28, 28, 1])
            let baseline = Self.patchMeanError(image, patches: mask, patchSize: 4)
            XCTAssertLessThan(mse, baseline, expectations.images[index].file)
            modelError += mse
            baselineError += baseline

            let strip = try XCTUnwrap((first.json["images"] as? [String: Any])?["strip"] as? String)
            XCTAssertNoThrow(try ImageDecoder.decode(XCTUnwrap(Data(base64Encoded: strip))))
        }
        XCTAssertLessThan(modelError / baselineError, 0.75, "reconstruction error relative to the patch-mean guess")
    }

    /// The classifier's top-1 on each image is the label recorded at export (a changed model, loader or
    /// preprocessing shows up here), most of them are the dataset's label, and the top-k scores are
    /// softmax probabilities in decreasing order.
    func testClassifierGivesTheRecordedLabels() throws {
        let reply = try call("/v1/classifications", ["model": Self.classifier, "input": images.map { $0.base64EncodedString() }, "top_k": 3])
        XCTAssertEqual(reply.status, 200, "\(reply.json)")
        let rows = try XCTUnwrap(reply.json["data"] as? [[String: Any]])
        XCTAssertEqual(rows.count, images.count)
        var correct = 0
        for (row, image) in zip(rows, expectations.images) {
            let labels = try XCTUnwrap(row["labels"] as? [[String: Any]])
            let names = labels.compactMap { $0["label"] as? String }
            let scores = labels.compactMap { ($0["score"] as? NSNumber)?.doubleValue }
            XCTAssertEqual(names.count, 3)
            XCTAssertEqual(names.first, image.expected, image.file)
            XCTAssertEqual(scores, scores.sorted(by: >), image.file)
            XCTAssertTrue(scores.allSatisfy { (0...1).contains($0) }, image.file)
            if names.first == image.label { correct += 1 }
        }
        XCTAssertGreaterThanOrEqual(correct, 8, "top-1 agreement with the dataset's labels")
    }

    /// The classifier's embeddings come from the same encoder it classifies with: finite and 128-d.
    func testClassifierServesEmbeddings() throws {
        let reply = try call("/v1/embeddings", ["model": Self.classifier, "input": images[0].base64EncodedString()])
        XCTAssertEqual(reply.status, 200, "\(reply.json)")
        let vector = ((reply.json["data"] as? [[String: Any]])?.first?["embedding"] as? [NSNumber] ?? []).map(\.floatValue)
        XCTAssertEqual(vector.count, 128)
        XCTAssertTrue(vector.allSatisfy(\.isFinite))
    }

    /// Mean squared difference of each listed patch's pixels (in [0, 1]) from that patch's mean.
    static func patchMeanError(_ image: Image, patches: [Int], patchSize p: Int) -> Double {
        let grid = image.width / p
        var se = 0.0
        for patch in patches {
            let (top, left) = ((patch / grid) * p, (patch % grid) * p)
            let values = (0..<(p * p)).map { Double(image.pixels[(top + $0 / p) * image.width + left + $0 % p]) / 255 }
            let mean = values.reduce(0, +) / Double(values.count)
            se += values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        }
        return se / Double(patches.count * p * p)
    }
}
